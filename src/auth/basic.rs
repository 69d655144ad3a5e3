//! HTTP Basic credentials.

use base64::Engine;

/// A username and password from an `Authorization: Basic` header. `Debug`
/// hides the password.
#[derive(Clone)]
pub struct BasicCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Parses the value of an `Authorization` header. `None` when it is not
/// Basic; `Some(Err)` when it is Basic but malformed.
pub fn parse(header: &str) -> Option<Result<BasicCredentials, &'static str>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = match base64::engine::general_purpose::STANDARD.decode(rest.trim()) {
        Ok(d) => d,
        Err(_) => return Some(Err("the Basic credentials are not base64")),
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Some(Err("the Basic credentials are not UTF-8"));
    };
    let Some((username, password)) = text.split_once(':') else {
        return Some(Err("the Basic credentials have no ':'"));
    };
    Some(Ok(BasicCredentials {
        username: username.to_string(),
        password: password.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_basic() {
        let c = parse(&format!("Basic {}", b64("oauth2:glpat-abc:def")))
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("oauth2", "glpat-abc:def"));
        let c = parse(&format!("basic  {}", b64(":pw"))).unwrap().unwrap();
        assert_eq!(c.username, "");
        assert!(parse("Bearer xyz").is_none());
        assert!(parse("Basic !!!").unwrap().is_err());
        assert!(parse(&format!("Basic {}", b64("nocolon"))).unwrap().is_err());
        assert!(!format!("{c:?}").contains("pw"));
    }
}
