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

/// The code of `secret_b32` at `unix_time` (what an authenticator app
/// shows).
pub fn code_at(secret_b32: &str, unix_time: u64) -> anyhow::Result<String> {
    Ok(totp(secret_b32, "user")?.generate(unix_time))
}

/// Seconds per code.
pub const STEP: u64 = 30;

/// Checks a 6-digit code at `unix_time`, allowing one step of clock skew
/// either way: the time step (`unix_time / STEP`, give or take one) whose
/// code it is, to be claimed once (a replay is refused by the caller).
/// Compared in constant time.
pub fn matching_step(secret_b32: &str, code: &str, unix_time: u64) -> anyhow::Result<Option<u64>> {
    let t = totp(secret_b32, "user")?;
    let now = unix_time / STEP;
    let mut found = None;
    for step in [now.saturating_sub(1), now, now + 1] {
        let expected = t.generate(step * STEP);
        let same = expected.len() == code.len()
            && expected
                .bytes()
                .zip(code.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same && found.is_none() {
            found = Some(step);
        }
    }
    Ok(found)
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
        let step = 1_700_000_000 / STEP;
        assert_eq!(matching_step(&secret, &code, 1_700_000_000).unwrap(), Some(step));
        // One step of skew either way, no more.
        assert_eq!(matching_step(&secret, &code, 1_700_000_000 + STEP).unwrap(), Some(step));
        assert_eq!(matching_step(&secret, &code, 1_700_000_000 - STEP).unwrap(), Some(step));
        assert_eq!(matching_step(&secret, &code, 1_700_000_000 + 2 * STEP).unwrap(), None);
        assert_eq!(matching_step(&secret, "000000x", 1_700_000_000).unwrap(), None);
    }
}
