//! Secrets out of log lines: credentials in a URL's userinfo
//! (`http://user:token@host/...`) and the values of credential-bearing
//! query parameters (`private_token=...`, `password=...`), however the
//! client spelled the key (`private%5Ftoken`, `private_token[]`, `;` as
//! separator). Over-redacting a look-alike key is fine; missing one is not.

/// Query keys whose values are secrets, compared with everything but
/// ASCII letters and digits removed (so `private_token`, `Private-Token`
/// and `private token` all match `privatetoken`).
const SECRET_KEYS: [&str; 6] = [
    "privatetoken",
    "accesstoken",
    "token",
    "password",
    "jobtoken",
    "sslpassword",
];

/// Whether a raw (still percent-encoded) query key names a secret.
pub fn secret_key(raw: &str) -> bool {
    let decoded = percent_decode(raw);
    // `k[]` and `k[x]` are Rack's array and hash forms of `k`.
    let base = decoded.split('[').next().unwrap_or_default();
    let norm: String = base
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_KEYS.contains(&norm.as_str())
}

/// A query string (without `?`) with each secret value replaced by
/// `[REDACTED]`; `&` and `;` both separate pairs, and are kept as they were.
pub fn query(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    for piece in q.split_inclusive(['&', ';']) {
        let (pair, sep) = match piece.strip_suffix(['&', ';']) {
            Some(p) => (p, &piece[p.len()..]),
            None => (piece, ""),
        };
        match pair.split_once('=') {
            Some((k, _)) if secret_key(k) => {
                out.push_str(k);
                out.push_str("=[REDACTED]");
            }
            _ => out.push_str(pair),
        }
        out.push_str(sep);
    }
    out
}

/// A URL or request target with its credentials hidden: the userinfo of
/// `scheme://userinfo@host` or `//userinfo@host` (all of it, or only the
/// password when `keep_user`), and secret query values.
pub fn url(s: &str, keep_user: bool) -> String {
    // An authority follows `scheme://` or a leading `//`, and only there.
    // It ends at the first `/` only (as libpq reads it), so a password with
    // a `?` or `#` in it is still taken as part of the userinfo.
    let (mut out, rest) = match s.find("//") {
        Some(i) if i == 0 || (s[..i].ends_with(':') && !s[..i].contains(['/', '?'])) => {
            let (prefix, rest) = s.split_at(i + 2);
            let end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            let shown = match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = match userinfo.split_once(':') {
                        Some((user, _)) if keep_user => format!("{user}:***"),
                        None if keep_user => userinfo.to_string(),
                        _ => "[REDACTED]".to_string(),
                    };
                    format!("{prefix}{user}@{}", query_part(host))
                }
                None => format!("{prefix}{}", query_part(authority)),
            };
            (shown, path)
        }
        _ => (String::new(), s),
    };
    out.push_str(&nested_userinfo(&query_part(rest)));
    out
}

/// The userinfo of URLs inside a path or query (`?next=http://u:p@h/`).
fn nested_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        let end = after.find(['/', '?', '#', '&', ';', ' ']).unwrap_or(after.len());
        match after[..end].rfind('@') {
            Some(at) => {
                out.push_str("[REDACTED]");
                rest = &after[at..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// `path[?query]` with the query's secrets redacted.
fn query_part(s: &str) -> String {
    match s.split_once('?') {
        Some((head, q)) => format!("{head}?{}", query(q)),
        None => s.to_string(),
    }
}

/// Decodes `%XX` escapes and `+`, as a framework does before it matches a
/// query key. Bytes that are not UTF-8 are replaced.
fn percent_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_values_in_every_spelling() {
        assert_eq!(
            query("private_token=glpat-secret&page=2"),
            "private_token=[REDACTED]&page=2"
        );
        assert_eq!(query("a=1&Access_Token=s"), "a=1&Access_Token=[REDACTED]");
        assert_eq!(query("service=git-upload-pack"), "service=git-upload-pack");
        assert_eq!(
            query("private%5Ftoken=s&private%5ftoken=t"),
            "private%5Ftoken=[REDACTED]&private%5ftoken=[REDACTED]"
        );
        for spelled in [
            "private_token[]",
            "private_token%5B%5D",
            "private_token[x]",
            "private_token%20",
            "private_token%00",
            "private+token",
            "PRIVATE-TOKEN",
        ] {
            assert_eq!(query(&format!("{spelled}=s3cret")), format!("{spelled}=[REDACTED]"));
        }
        assert_eq!(query("a=1;private_token=s;b=2"), "a=1;private_token=[REDACTED];b=2");
        assert_eq!(
            query("password=pw&sslpassword=x"),
            "password=[REDACTED]&sslpassword=[REDACTED]"
        );
        assert_eq!(query("a%=1&b=%zz&%"), "a%=1&b=%zz&%");
        assert_eq!(query(""), "");
        assert_eq!(query("tokens=1&name=token"), "tokens=1&name=token");
    }

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            url("http://alice:glpat-x@127.0.0.1:8080/api/v4/user", false),
            "http://[REDACTED]@127.0.0.1:8080/api/v4/user"
        );
        assert_eq!(
            url(
                "//oauth2:glpat-x@h/alice/tools.git/info/refs?service=git-upload-pack",
                false
            ),
            "//[REDACTED]@h/alice/tools.git/info/refs?service=git-upload-pack"
        );
        assert_eq!(url("http://glpat-x@h/x", false), "http://[REDACTED]@h/x");
        assert_eq!(url("/api/v4/users?search=a@b", false), "/api/v4/users?search=a@b");
        assert_eq!(url("/a/b//c@d", false), "/a/b//c@d");
        assert_eq!(
            url("postgres://bob:s3cret@db:5432/gitpat", true),
            "postgres://bob:***@db:5432/gitpat"
        );
        assert_eq!(url("postgres://bob@db/gitpat", true), "postgres://bob@db/gitpat");
        assert_eq!(
            url("postgres://u@127.0.0.1:1/db?password=pw2secret&sslmode=disable", true),
            "postgres://u@127.0.0.1:1/db?password=[REDACTED]&sslmode=disable"
        );
        assert_eq!(url("postgres://db/gitpat", true), "postgres://db/gitpat");
        assert_eq!(
            url("postgres://bob:pa?ss@db/gitpat", true),
            "postgres://bob:***@db/gitpat"
        );
        assert_eq!(
            url("http://h?private_token=x", false),
            "http://h?private_token=[REDACTED]"
        );
        assert_eq!(
            url("/x?next=http://u:p@h/y&a=1", false),
            "/x?next=http://[REDACTED]@h/y&a=1"
        );
        assert_eq!(url("/x?a=http://h/b@c", false), "/x?a=http://h/b@c");
        assert_eq!(url("/tmp/x.db", true), "/tmp/x.db");
    }
}
