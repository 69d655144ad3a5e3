//! Personal access token secrets. A [`PlainToken`] exists only between its
//! creation and the reply that shows it; the database sees a [`TokenDigest`],
//! an HMAC-SHA-256 of the token under the instance [`SecretKey`].

use std::fmt;
use std::path::Path;

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Characters after the prefix of a generated token.
pub const GENERATED_LEN: usize = 20;
/// The shortest predetermined token string accepted.
pub const MIN_PREDETERMINED_LEN: usize = 20;
/// The longest token string accepted at all (anything longer is not a token).
pub const MAX_TOKEN_LEN: usize = 255;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// A token in clear. Its `Debug` and `Display` never show the secret.
pub struct PlainToken(String);

impl PlainToken {
    /// Wraps a string the caller supplied (a predetermined token, or one
    /// presented for authentication).
    pub fn new(s: impl Into<String>) -> Self {
        PlainToken(s.into())
    }

    /// A new token: `prefix` then 20 characters of `[A-Za-z0-9_-]` from the
    /// operating system's CSPRNG (six bits each, so uniform: 120 bits).
    pub fn generate(prefix: &str) -> anyhow::Result<Self> {
        let mut bytes = [0u8; GENERATED_LEN];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
        let mut s = String::with_capacity(prefix.len() + GENERATED_LEN);
        s.push_str(prefix);
        s.extend(bytes.iter().map(|b| ALPHABET[(b & 63) as usize] as char));
        Ok(PlainToken(s))
    }

    /// The secret itself: call only to show it once, or to digest it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken(<redacted>)")
    }
}

/// Checks a predetermined token string: at least 20 characters, printable
/// ASCII without whitespace.
pub fn validate_predetermined(s: &str) -> Result<(), String> {
    if s.len() < MIN_PREDETERMINED_LEN {
        return Err(format!(
            "the token string is {} characters long; a predetermined token needs at least {MIN_PREDETERMINED_LEN}",
            s.chars().count()
        ));
    }
    if s.len() > MAX_TOKEN_LEN {
        return Err(format!("the token string is longer than {MAX_TOKEN_LEN} characters"));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token string may hold only printable ASCII characters, without spaces".into());
    }
    Ok(())
}

/// The instance secret key that token digests are keyed with.
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// Reads the key file (64 hex digits), creating it with mode 0600 on
    /// first use. Creation is atomic: two processes starting at once end up
    /// with the same key.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
            crate::fsutil::write_new_private(path, format!("{}\n", hex::encode(bytes)).as_bytes())
                .with_context(|| format!("cannot create the secret key file {}", path.display()))?;
        }
        Self::load(path)
    }

    /// Reads the key file (64 hex digits).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the secret key file {}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .with_context(|| format!("the secret key file {} must hold 64 hex digits", path.display()))?;
        Ok(SecretKey(bytes))
    }

    /// What tells this key from another without telling anything of it:
    /// hex of a MAC of a constant under it. The database keeps the one it
    /// was set up with.
    pub fn fingerprint(&self) -> String {
        hex::encode(self.mac(&[b"gitpat key fingerprint v1"]).finalize().into_bytes())
    }

    /// HMAC-SHA-256 under this key of `parts`, each length-prefixed (so
    /// that no two lists of parts give the same input): the digests and
    /// derived keys of sessions, CSRF tokens and flashes, each with its
    /// own first part naming what it is for.
    pub fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    /// The digest stored for a token: hex HMAC-SHA-256 under this key.
    pub fn digest(&self, token: &PlainToken) -> TokenDigest {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(token.expose().as_bytes());
        TokenDigest(hex::encode(mac.finalize().into_bytes()))
    }
}

/// A token's keyed digest, as the database keeps it. Not a secret the way
/// the token is, but it finds the token's row: `Debug` shows none of it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest(String);

impl TokenDigest {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// The scopes a token may carry (spec section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Api,
    ReadApi,
    ReadUser,
    ReadRepository,
    WriteRepository,
    ReadRegistry,
    WriteRegistry,
    Sudo,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::Api,
        Scope::ReadApi,
        Scope::ReadUser,
        Scope::ReadRepository,
        Scope::WriteRepository,
        Scope::ReadRegistry,
        Scope::WriteRegistry,
        Scope::Sudo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Api => "api",
            Scope::ReadApi => "read_api",
            Scope::ReadUser => "read_user",
            Scope::ReadRepository => "read_repository",
            Scope::WriteRepository => "write_repository",
            Scope::ReadRegistry => "read_registry",
            Scope::WriteRegistry => "write_registry",
            Scope::Sudo => "sudo",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s)
    }

    /// May a token with this scope pull over Git?
    pub fn allows_git_pull(self) -> bool {
        matches!(
            self,
            Scope::Api | Scope::ReadApi | Scope::ReadRepository | Scope::WriteRepository
        )
    }

    /// May a token with this scope push over Git?
    pub fn allows_git_push(self) -> bool {
        matches!(self, Scope::Api | Scope::WriteRepository)
    }
}

/// Parses and checks a list of scope names: non-empty, all known, `sudo` only
/// for an admin. Returns them sorted and without duplicates.
pub fn parse_scopes<S: AsRef<str>>(names: &[S], owner_is_admin: bool) -> Result<Vec<Scope>, String> {
    let mut scopes = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        let name = name.as_ref().trim();
        if name.is_empty() {
            continue;
        }
        match Scope::parse(name) {
            Some(s) => scopes.push(s),
            None => unknown.push(name.to_string()),
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        return Err(format!(
            "unknown scope{} {}; the scopes are {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join(", "),
            known.join(", ")
        ));
    }
    if scopes.is_empty() {
        return Err("a token needs at least one scope".into());
    }
    scopes.sort();
    scopes.dedup();
    if scopes.contains(&Scope::Sudo) && !owner_is_admin {
        return Err("the sudo scope is only for tokens of administrators".into());
    }
    Ok(scopes)
}

/// The stored form of a scope set: names separated by spaces.
pub fn scopes_to_db(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// Reads a stored scope set; names this version does not know are dropped.
pub fn scopes_from_db(s: &str) -> Vec<Scope> {
    s.split_whitespace().filter_map(Scope::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_glpat_format() {
        let t = PlainToken::generate("glpat-").unwrap();
        let s = t.expose();
        assert!(s.starts_with("glpat-"));
        assert_eq!(s.len(), 26);
        assert!(s[6..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        let other = PlainToken::generate("glpat-").unwrap();
        assert_ne!(s, other.expose());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = PlainToken::new("glpat-abcdefghijklmnopqrst");
        assert!(!format!("{t:?}").contains("abcdefghij"));
        let k = SecretKey::from_bytes([7; 32]);
        assert!(!format!("{k:?}").contains('7'));
    }

    #[test]
    fn predetermined_tokens_need_twenty_printable_characters() {
        assert!(validate_predetermined("token-string-here123").is_ok());
        let err = validate_predetermined("token-string-here12").unwrap_err();
        assert!(err.contains("19 characters") && err.contains("at least 20"), "{err}");
        assert!(validate_predetermined("token string here 1234").is_err());
        assert!(validate_predetermined("token-string-here123\u{e9}").is_err());
    }

    #[test]
    fn digests_do_not_show_in_debug() {
        let d = SecretKey::from_bytes([1; 32]).digest(&PlainToken::new("glpat-x"));
        assert_eq!(format!("{d:?}"), "TokenDigest(..)");
        assert_eq!(d.as_str().len(), 64);
    }

    #[test]
    fn digest_is_keyed() {
        let t = PlainToken::new("token-string-here123");
        let a = SecretKey::from_bytes([1; 32]).digest(&t);
        let b = SecretKey::from_bytes([2; 32]).digest(&t);
        assert_eq!(a.as_str().len(), 64);
        assert_ne!(a, b);
        assert_eq!(a, SecretKey::from_bytes([1; 32]).digest(&t));
    }

    #[test]
    fn scope_validation() {
        assert_eq!(
            parse_scopes(&["read_repository", "api", "api"], false).unwrap(),
            vec![Scope::Api, Scope::ReadRepository]
        );
        let err = parse_scopes(&["api", "bogus"], false).unwrap_err();
        assert!(err.contains("unknown scope bogus"), "{err}");
        assert!(parse_scopes::<&str>(&[], false)
            .unwrap_err()
            .contains("at least one scope"));
        assert!(parse_scopes(&["", " "], false).is_err());
        assert!(parse_scopes(&["sudo"], false).unwrap_err().contains("administrators"));
        assert_eq!(
            parse_scopes(&["sudo", "api"], true).unwrap(),
            vec![Scope::Api, Scope::Sudo]
        );
    }

    #[test]
    fn scope_abilities_follow_the_spec_table() {
        use Scope::*;
        let pull: Vec<Scope> = Scope::ALL.into_iter().filter(|s| s.allows_git_pull()).collect();
        assert_eq!(pull, vec![Api, ReadApi, ReadRepository, WriteRepository]);
        let push: Vec<Scope> = Scope::ALL.into_iter().filter(|s| s.allows_git_push()).collect();
        assert_eq!(push, vec![Api, WriteRepository]);
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret_key");
        let a = SecretKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = SecretKey::load_or_create(&path).unwrap();
        let t = PlainToken::new("x".repeat(20));
        assert_eq!(a.digest(&t), b.digest(&t));
        std::fs::write(&path, "not hex").unwrap();
        assert!(SecretKey::load_or_create(&path)
            .unwrap_err()
            .to_string()
            .contains("64 hex digits"));
    }
}
