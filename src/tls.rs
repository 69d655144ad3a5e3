//! https: the certificate that `serve` presents (rustls, no OpenSSL),
//! read again on SIGHUP without a restart, and `gitpat tls self-signed`,
//! a private CA and a certificate signed by it for a quick start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate file {}: {source}", path.display())]
    Cert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the TLS certificate file {} holds no certificate (PEM, \"BEGIN CERTIFICATE\")", .0.display())]
    NoCert(PathBuf),
    #[error("cannot read the TLS key file {}: {source} (a PEM private key: PKCS#8, RSA or EC)", path.display())]
    Key {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the TLS key {} cannot be used: {source}", path.display())]
    BadKey { path: PathBuf, source: rustls::Error },
    #[error("the TLS key {} does not belong to the certificate {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot make the TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0} is not a host name or IP address for a certificate")]
    BadHost(String),
    #[error("{} exists already: remove it or write elsewhere (--out)", .0.display())]
    Exists(PathBuf),
}

/// The crypto the server uses: ring (builds with a C compiler only).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate and key in use, swapped whole by [`CertStore::reload`]:
/// a handshake sees the old pair or the new one, never a mix.
pub struct CertStore {
    files: TlsConfig,
    current: RwLock<Arc<CertifiedKey>>,
}

/// Names the files only: never key material.
impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// What was loaded, for the log: never the key.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// SHA-256 of the first certificate (the server's own), as hex.
    pub fingerprint: String,
    pub chain_len: usize,
}

impl std::fmt::Display for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate sha256:{} ({} in the chain)",
            self.fingerprint, self.chain_len
        )
    }
}

impl CertStore {
    pub fn open(files: &TlsConfig) -> Result<(Arc<CertStore>, Loaded), TlsError> {
        let (key, loaded) = load(files)?;
        let store = CertStore {
            files: files.clone(),
            current: RwLock::new(Arc::new(key)),
        };
        Ok((Arc::new(store), loaded))
    }

    /// Reads both files again; on any error the pair in use stays.
    pub fn reload(&self) -> Result<Loaded, TlsError> {
        let (key, loaded) = load(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(loaded)
    }

    /// The rustls server configuration: TLS 1.2 and 1.3, this store's
    /// certificate (actix adds the ALPN protocols, h2 and http/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn load(files: &TlsConfig) -> Result<(CertifiedKey, Loaded), TlsError> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Cert {
            path: files.cert.clone(),
            source,
        })?;
    let Some(first) = certs.first() else {
        return Err(TlsError::NoCert(files.cert.clone()));
    };
    let loaded = Loaded {
        fingerprint: hex::encode(Sha256::digest(first.as_ref())),
        chain_len: certs.len(),
    };
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Key {
        path: files.key.clone(),
        source,
    })?;
    let key = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        },
        source => TlsError::BadKey {
            path: files.key.clone(),
            source,
        },
    })?;
    Ok((key, loaded))
}

/// What `gitpat tls self-signed` wrote.
#[derive(Debug)]
pub struct SelfSigned {
    /// The server's certificate, then the CA's (the chain to present).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA to trust (`git -c http.sslCAInfo=...`); its key is not kept,
    /// so it can sign nothing else.
    pub ca: PathBuf,
    pub not_after: chrono::NaiveDate,
}

/// Makes a one-off CA and a certificate for `hosts` signed by it, valid
/// `days` from `today`, into `dir` (created; `key.pem` private).
pub fn self_signed(dir: &Path, hosts: &[String], today: chrono::NaiveDate, days: u32) -> Result<SelfSigned, TlsError> {
    use chrono::Datelike;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    for h in hosts {
        let ok = h.parse::<std::net::IpAddr>().is_ok()
            || (!h.is_empty()
                && h.len() <= 253
                && h.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
                }));
        if !ok {
            return Err(TlsError::BadHost(h.clone()));
        }
    }
    let date = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let start = today - chrono::Days::new(1);
    let end = today + chrono::Days::new(u64::from(days));

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("gitpat CA for {}", hosts.join(", ")));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = date(start);
    ca_params.not_after = date(end);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(hosts.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, hosts.first().cloned().unwrap_or_default());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = date(start);
    params.not_after = date(end);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    let write = |path: PathBuf, text: &str| -> Result<PathBuf, TlsError> {
        crate::fsutil::write_new_private(&path, text.as_bytes()).map_err(|source| TlsError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    for name in ["key.pem", "cert.pem", "ca.pem"] {
        if dir.join(name).exists() {
            return Err(TlsError::Exists(dir.join(name)));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let key = write(dir.join("key.pem"), &key.serialize_pem())?;
    let chain = format!("{}{}", cert.pem(), ca_cert.pem());
    let cert = write(dir.join("cert.pem"), &chain)?;
    let ca = write(dir.join("ca.pem"), &ca_cert.pem())?;
    Ok(SelfSigned {
        cert,
        key,
        ca,
        not_after: end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 2).expect("a date")
    }

    #[test]
    fn a_self_signed_pair_loads_and_reloads_and_a_foreign_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = self_signed(
            &dir.path().join("a"),
            &["git.example".into(), "127.0.0.1".into()],
            today(),
            30,
        )
        .expect("self-signed");
        let files = TlsConfig {
            cert: a.cert.clone(),
            key: a.key.clone(),
        };
        let (store, loaded) = CertStore::open(&files).expect("loads");
        assert_eq!(loaded.chain_len, 2, "the server's certificate, then the CA's");
        store.server_config().expect("a server config");

        // A new pair written over the files is what the next reload serves.
        let b = self_signed(&dir.path().join("b"), &["git.example".into()], today(), 30).expect("self-signed");
        assert!(matches!(
            self_signed(&dir.path().join("b"), &["git.example".into()], today(), 30),
            Err(TlsError::Exists(_))
        ));
        std::fs::copy(&b.cert, &a.cert).expect("copy");
        std::fs::copy(&b.key, &a.key).expect("copy");
        let again = store.reload().expect("reloads");
        assert_ne!(again.fingerprint, loaded.fingerprint);

        // A key of another certificate: refused, and the pair in use stays.
        std::fs::copy(dir.path().join("a").join("ca.pem"), &a.cert).expect("copy");
        let err = store.reload().expect_err("the key does not match");
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        let in_use = hex::encode(Sha256::digest(store.current.read().expect("lock").cert[0].as_ref()));
        assert_eq!(in_use, again.fingerprint);

        std::fs::write(&a.cert, "not a certificate\n").expect("write");
        assert!(matches!(store.reload(), Err(TlsError::NoCert(_))));
    }

    #[test]
    fn bad_host_names_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["", "a b", "-x.example", "x..example", "évil.example"] {
            let err = self_signed(dir.path(), &[bad.to_string()], today(), 1).expect_err(bad);
            assert!(matches!(err, TlsError::BadHost(_)), "{bad}: {err}");
        }
    }
}
