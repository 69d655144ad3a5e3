//! Secrets gitpat must read back (two-factor TOTP secrets), sealed at rest:
//! ChaCha20-Poly1305 (ring) under a key derived from the instance's secret
//! key, as GitLab keeps `otp_secret` encrypted with its `db_key_base`. A
//! database dump alone then shows no secret. What is sealed is bound to
//! what it belongs to (`context`, such as the user's id): a sealed secret
//! copied to another row does not open there.

use base64::Engine;
use hmac::Mac;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use super::token::SecretKey;

/// How a sealed value starts (a TOTP secret in clear is base32: never a
/// colon).
pub const PREFIX: &str = "sealed:v1:";

/// Why a stored value does not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("a sealed secret is not valid base64")]
    Encoding,
    #[error("a sealed secret does not open with this instance's secret key (another key, or altered)")]
    Open,
    #[error("the system's random source failed")]
    Random,
}

fn key(secret: &SecretKey) -> LessSafeKey {
    let derived = secret.mac(&[b"gitpat seal v1"]).finalize().into_bytes();
    // 32 bytes, the key length of ChaCha20-Poly1305: cannot fail.
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &derived).expect("a 32-byte key");
    LessSafeKey::new(unbound)
}

/// Is `stored` a sealed value (else a secret kept in clear by an earlier
/// version)?
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// `plain`, sealed for `context`: [`PREFIX`], then base64 of a random
/// nonce and the ciphertext with its tag.
pub fn seal(secret: &SecretKey, context: &[u8], plain: &str) -> Result<String, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).map_err(|_| SealError::Random)?;
    let mut buf = plain.as_bytes().to_vec();
    key(secret)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut buf)
        .map_err(|_| SealError::Open)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
    ))
}

/// The secret `stored` holds for `context`: opened when sealed, as it is
/// when kept in clear (an earlier version's row, until
/// `service::two_factor::seal_kept_in_clear` reaches it).
pub fn open(secret: &SecretKey, context: &[u8], stored: &str) -> Result<String, SealError> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else {
        return Ok(stored.to_string());
    };
    let mut raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .map_err(|_| SealError::Encoding)?;
    if raw.len() < NONCE_LEN {
        return Err(SealError::Encoding);
    }
    let mut body = raw.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| SealError::Encoding)?;
    let plain = key(secret)
        .open_in_place(nonce, Aad::from(context), &mut body)
        .map_err(|_| SealError::Open)?;
    String::from_utf8(plain.to_vec()).map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let k = SecretKey::from_bytes([7; 32]);
        let sealed = seal(&k, b"user 1", "JBSWY3DPEHPK3PXP").unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("JBSWY3DPEHPK3PXP"), "{sealed}");
        assert_eq!(open(&k, b"user 1", &sealed).unwrap(), "JBSWY3DPEHPK3PXP");
        // A new nonce each time.
        assert_ne!(seal(&k, b"user 1", "JBSWY3DPEHPK3PXP").unwrap(), sealed);
        assert!(matches!(open(&k, b"user 2", &sealed), Err(SealError::Open)));
        let other = SecretKey::from_bytes([8; 32]);
        assert!(matches!(open(&other, b"user 1", &sealed), Err(SealError::Open)));
        // Altered: one character of the ciphertext changed.
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(matches!(open(&k, b"user 1", &altered), Err(SealError::Open)));
        assert!(matches!(open(&k, b"user 1", "sealed:v1:%%"), Err(SealError::Encoding)));
        assert!(matches!(
            open(&k, b"user 1", "sealed:v1:AAAA"),
            Err(SealError::Encoding)
        ));
        // A secret kept in clear reads as it is.
        assert!(!is_sealed("JBSWY3DPEHPK3PXP"));
        assert_eq!(open(&k, b"user 1", "JBSWY3DPEHPK3PXP").unwrap(), "JBSWY3DPEHPK3PXP");
    }
}
