//! Sending mail (lettre): SMTP (plain, STARTTLS or TLS, with a private CA
//! if configured), the local sendmail, or `.eml` files in a folder. Every
//! send is blocking: callers run it on the blocking pool, with no database
//! connection held.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{FileTransport, Message, SendmailTransport, SmtpTransport, Transport};

use crate::config::{MailConfig, MailTransport, SmtpTls};

/// How long one SMTP conversation may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One message, in plain text and HTML.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub to_name: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub enum Mailer {
    Off,
    Smtp(Box<SmtpTransport>),
    Sendmail(SendmailTransport),
    File(FileTransport),
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail is off")]
    Off,
    #[error("bad address: {0}")]
    Address(String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("cannot send: {0}")]
    Send(String),
}

impl Mailer {
    /// The mailer `config` describes (its From address decided by the
    /// caller). Errors name what is wrong in the configuration.
    pub fn from_config(config: &MailConfig) -> anyhow::Result<Mailer> {
        Ok(match &config.transport {
            MailTransport::Off => Mailer::Off,
            MailTransport::Sendmail => Mailer::Sendmail(SendmailTransport::new_with_command("/usr/sbin/sendmail")),
            MailTransport::File(dir) => {
                crate::fsutil::create_private_dir(dir)
                    .map_err(|e| anyhow::anyhow!("cannot create the mail folder {}: {e}", dir.display()))?;
                Mailer::File(FileTransport::new(dir))
            }
            MailTransport::Smtp(s) => {
                let tls = match s.tls {
                    SmtpTls::None => Tls::None,
                    SmtpTls::Starttls | SmtpTls::Tls => {
                        let mut b = TlsParameters::builder(s.host.clone());
                        if let Some(ca) = &s.ca_file {
                            let pem = std::fs::read(ca)
                                .map_err(|e| anyhow::anyhow!("cannot read smtp_ca_file {}: {e}", ca.display()))?;
                            b = b.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| {
                                anyhow::anyhow!("smtp_ca_file {} is not a PEM certificate: {e}", ca.display())
                            })?);
                        }
                        let params = b.build().map_err(|e| anyhow::anyhow!("bad SMTP TLS settings: {e}"))?;
                        if s.tls == SmtpTls::Tls {
                            Tls::Wrapper(params)
                        } else {
                            Tls::Required(params)
                        }
                    }
                };
                let mut b = SmtpTransport::builder_dangerous(&s.host)
                    .port(s.port)
                    .tls(tls)
                    .timeout(Some(SMTP_TIMEOUT));
                if let (Some(u), Some(p)) = (&s.username, &s.password) {
                    b = b.credentials(Credentials::new(u.clone(), p.clone()));
                }
                Mailer::Smtp(Box::new(b.build()))
            }
        })
    }

    pub fn is_on(&self) -> bool {
        !matches!(self, Mailer::Off)
    }

    /// Sends `mail` from `from`.
    pub fn send(&self, from: &str, mail: &Mail) -> Result<(), MailError> {
        if !self.is_on() {
            return Err(MailError::Off);
        }
        let from: Mailbox = format!("gitpat <{from}>")
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Address(e.to_string()))?;
        let to = Mailbox::new(
            Some(mail.to_name.clone()),
            mail.to
                .parse()
                .map_err(|e: lettre::address::AddressError| MailError::Address(e.to_string()))?,
        );
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
            .map_err(|e| MailError::Build(e.to_string()))?;
        let r = match self {
            Mailer::Off => return Err(MailError::Off),
            Mailer::Smtp(t) => t.send(&message).map(|_| ()).map_err(|e| e.to_string()),
            Mailer::Sendmail(t) => t.send(&message).map(|_| ()).map_err(|e| e.to_string()),
            Mailer::File(t) => t.send(&message).map(|_| ()).map_err(|e| e.to_string()),
        };
        r.map_err(MailError::Send)
    }
}

/// The From address: the configured one, else `gitpat@<host of
/// external_url>` (`gitpat@localhost` without one).
pub fn from_address(config: &MailConfig, external_url: Option<&str>) -> String {
    if let Some(f) = &config.from {
        return f.clone();
    }
    let host = external_url
        .and_then(|u| u.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.split(['/', ':']).next())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    format!("gitpat@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_from_address_defaults_to_the_external_host() {
        let c = MailConfig::default();
        assert_eq!(
            from_address(&c, Some("https://git.example.com:8443/x")),
            "gitpat@git.example.com"
        );
        assert_eq!(from_address(&c, None), "gitpat@localhost");
        let c = MailConfig {
            from: Some("noreply@example.org".into()),
            ..MailConfig::default()
        };
        assert_eq!(from_address(&c, Some("https://git.example.com")), "noreply@example.org");
    }
}
