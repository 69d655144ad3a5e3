//! Two-factor authentication secrets (TOTP, RFC 6238: SHA-1, 6 digits, 30 s).

use totp_rs::{Algorithm, Secret, TOTP};

const ISSUER: &str = "gitpat";

/// A new random secret, base32 encoded, as stored.
pub fn generate_secret() -> String {
    Secret::generate_secret().to_encoded().to_string()
}

fn totp(secret_b32: &str, account: &str) -> anyhow::Result<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("the stored two-factor secret is not base32: {e:?}"))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some(ISSUER.to_string()),
        account.to_string(),
    )
    .map_err(|e| anyhow::anyhow!("bad two-factor secret: {e}"))
}

/// The `otpauth://totp/...` URI an authenticator app takes.
pub fn provisioning_uri(secret_b32: &str, account: &str) -> anyhow::Result<String> {
    Ok(totp(secret_b32, account)?.get_url())
}

/// Checks a 6-digit code at `unix_time`, allowing one step of clock skew.
pub fn verify(secret_b32: &str, code: &str, unix_time: u64) -> anyhow::Result<bool> {
    Ok(totp(secret_b32, "user")?.check(code, unix_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_and_codes() {
        let secret = generate_secret();
        let uri = provisioning_uri(&secret, "alice").unwrap();
        assert!(uri.starts_with("otpauth://totp/gitpat:alice?"), "{uri}");
        assert!(uri.contains(&format!("secret={secret}")));
        let t = totp(&secret, "alice").unwrap();
        let code = t.generate(1_700_000_000);
        assert!(verify(&secret, &code, 1_700_000_000).unwrap());
        assert!(!verify(&secret, &code, 1_700_000_000 + 600).unwrap());
    }
}
