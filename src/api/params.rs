//! Request parameters as Grape (GitLab's API framework) sees them: the query
//! string merged with the body, which may be JSON or form-encoded; the body
//! wins where both name a parameter. Typed getters answer GitLab's errors
//! (`{"error":"x is missing"}`, `{"error":"x is invalid"}`).
//!
//! Form and query syntax: `a=1&b=2`; `k[]=x&k[]=y` makes the array `k`;
//! a repeated plain key keeps its last value (as Rack does).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::error::ApiError;

/// The largest request body the API reads.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct Params {
    map: Map<String, Value>,
}

/// Adds one `key=value` pair of a query string or form body.
fn add_pair(map: &mut Map<String, Value>, key: String, value: String) {
    if let Some(k) = key.strip_suffix("[]") {
        match map.get_mut(k) {
            Some(Value::Array(a)) => a.push(Value::String(value)),
            _ => {
                map.insert(k.to_string(), Value::Array(vec![Value::String(value)]));
            }
        }
    } else {
        map.insert(key, Value::String(value));
    }
}

impl Params {
    /// From a query string (without `?`).
    pub fn from_query(query: &str) -> Params {
        let mut map = Map::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            add_pair(&mut map, k.into_owned(), v.into_owned());
        }
        Params { map }
    }

    /// Merges a request body into these parameters. `content_type` is the
    /// `Content-Type` header as sent (`None` when absent). A malformed body
    /// is refused, so nothing is done with half of it.
    pub fn merge_body(&mut self, content_type: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let (media, boundary) = match content_type {
            None => (None, None),
            Some(ct) => {
                let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                let boundary = header_params(ct)
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
                    .map(|(_, v)| v);
                (Some(media), boundary)
            }
        };
        match media.as_deref() {
            Some("multipart/form-data") => {
                let boundary = boundary
                    .filter(|b| !b.is_empty() && b.len() <= 70)
                    .ok_or_else(|| ApiError::bad_request("the multipart body has no boundary"))?;
                let mut form = Map::new();
                for (k, v) in parse_multipart(body, &boundary)? {
                    add_pair(&mut form, k, v);
                }
                self.map.extend(form);
            }
            Some("application/json") => {
                let v: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("the JSON body is malformed: {e}")))?;
                let Value::Object(obj) = v else {
                    return Err(ApiError::bad_request("the JSON body must be an object"));
                };
                for (k, v) in obj {
                    self.map.insert(k, v);
                }
            }
            None | Some("application/x-www-form-urlencoded") => {
                let text =
                    std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the form body is not valid UTF-8"))?;
                if text.bytes().any(|b| b.is_ascii_control() && !b.is_ascii_whitespace()) {
                    return Err(ApiError::bad_request("the form body is malformed"));
                }
                let mut form = Map::new();
                for (k, v) in form_urlencoded::parse(text.trim().as_bytes()) {
                    add_pair(&mut form, k.into_owned(), v.into_owned());
                }
                for (k, v) in form {
                    self.map.insert(k, v);
                }
            }
            Some(_) => return Err(ApiError::UnsupportedMediaType),
        }
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// Refuses with every one of `names` that is absent (or null, or an
    /// empty string), in the order given: `{"error":"a is missing, b is missing"}`.
    pub fn require(&self, names: &[&str]) -> Result<(), ApiError> {
        let missing: Vec<String> = names
            .iter()
            .filter(|n| match self.map.get(**n) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            })
            .map(|n| n.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Missing(missing))
        }
    }

    /// A string; numbers and booleans are taken as their text (Grape
    /// coerces them); arrays and objects are invalid. Null is absent.
    pub fn str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ApiError::InvalidParam(name.to_string())),
        }
    }

    /// A required string (present and not empty).
    pub fn required_str(&self, name: &str) -> Result<String, ApiError> {
        self.require(&[name])?;
        self.str(name)?.ok_or_else(|| ApiError::Missing(vec![name.to_string()]))
    }

    /// A boolean: JSON true/false, or the text `true`/`false`/`1`/`0`
    /// (any case, as Grape accepts). An empty string is absent.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(ApiError::InvalidParam(name.to_string())),
            },
            Some(Value::Number(n)) => match n.as_i64() {
                Some(1) => Ok(Some(true)),
                Some(0) => Ok(Some(false)),
                _ => Err(ApiError::InvalidParam(name.to_string())),
            },
            Some(_) => Err(ApiError::InvalidParam(name.to_string())),
        }
    }

    /// An integer, from a JSON number or decimal text. An empty string is absent.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::InvalidParam(name.to_string())),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::InvalidParam(name.to_string())),
            Some(_) => Err(ApiError::InvalidParam(name.to_string())),
        }
    }

    /// A date, `YYYY-MM-DD`. An empty string is absent.
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        match self.str(name)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse_date(&s)
                .map(Some)
                .ok_or_else(|| ApiError::InvalidParam(name.to_string())),
        }
    }

    /// A point in time: RFC 3339 (`2024-01-31T12:00:00Z`, any offset),
    /// a naive `YYYY-MM-DDTHH:MM:SS[.fff]` taken as UTC, or a date
    /// (its midnight UTC). An empty string is absent.
    pub fn datetime(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        match self.str(name)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse_datetime(&s)
                .map(Some)
                .ok_or_else(|| ApiError::InvalidParam(name.to_string())),
        }
    }

    /// An array of strings: a JSON array of strings, `k[]=a&k[]=b`, or
    /// one comma-separated string (GitLab's `CommaSeparatedToArray`).
    pub fn str_list(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect(),
            )),
            Some(Value::Array(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for v in a {
                    match v {
                        Value::String(s) => {
                            out.extend(s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from))
                        }
                        _ => return Err(ApiError::InvalidParam(name.to_string())),
                    }
                }
                Ok(Some(out))
            }
            Some(_) => Err(ApiError::InvalidParam(name.to_string())),
        }
    }

    /// [`Params::str_list`] with its empty entries kept (trimmed), for a
    /// check that refuses them: `k[]=a&k[]=` is `["a", ""]`.
    pub fn str_list_with_empty(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        let split = |s: &str| s.split(',').map(|p| p.trim().to_string()).collect::<Vec<_>>();
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(split(s))),
            Some(Value::Array(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for v in a {
                    match v {
                        Value::String(s) => out.extend(split(s)),
                        _ => return Err(ApiError::InvalidParam(name.to_string())),
                    }
                }
                Ok(Some(out))
            }
            Some(_) => Err(ApiError::InvalidParam(name.to_string())),
        }
    }

    /// An array of integers: a JSON array of numbers or decimal strings,
    /// `k[]=1&k[]=2`, or one comma-separated string.
    pub fn int_list(&self, name: &str) -> Result<Option<Vec<i64>>, ApiError> {
        let invalid = || ApiError::InvalidParam(name.to_string());
        match self.map.get(name) {
            Some(Value::Array(a)) if a.iter().all(Value::is_number) => a
                .iter()
                .map(|v| v.as_i64().ok_or_else(invalid))
                .collect::<Result<_, _>>()
                .map(Some),
            _ => match self.str_list(name)? {
                None => Ok(None),
                Some(items) => items
                    .iter()
                    .map(|s| s.parse::<i64>().map_err(|_| invalid()))
                    .collect::<Result<_, _>>()
                    .map(Some),
            },
        }
    }

    /// A string that must be one of `allowed`:
    /// `{"error":"x does not have a valid value"}` otherwise.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.str(name)? {
            None => Ok(None),
            Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
            Some(_) => Err(ApiError::NotAllowedValue(name.to_string())),
        }
    }
}

/// The fields of a `multipart/form-data` body (RFC 7578), in order. Parts
/// with a `filename` (uploads: gitpat takes none) are skipped; a body that
/// does not follow the format is refused whole.
fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<(String, String)>, ApiError> {
    let malformed = || ApiError::bad_request("the multipart body is malformed");
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let delimiter = format!("--{boundary}");
    let next = format!("\r\n--{boundary}");
    let start = find(body, delimiter.as_bytes()).ok_or_else(malformed)?;
    let mut rest = &body[start + delimiter.len()..];
    let mut fields = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(fields);
        }
        // RFC 2046 allows transport padding (spaces, tabs) after a delimiter.
        let pad = rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        rest = rest[pad..].strip_prefix(b"\r\n").ok_or_else(malformed)?;
        let head_end = find(rest, b"\r\n\r\n").ok_or_else(malformed)?;
        let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| malformed())?;
        rest = &rest[head_end + 4..];
        let end = find(rest, next.as_bytes()).ok_or_else(malformed)?;
        let content = &rest[..end];
        rest = &rest[end + next.len()..];
        let disposition = head
            .split("\r\n")
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case("content-disposition").then_some(v)
            })
            .ok_or_else(malformed)?;
        let attrs = header_params(disposition);
        let attr = |name: &str| attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let name = attr("name").ok_or_else(malformed)?.clone();
        if attr("filename").is_some() || attr("filename*").is_some() {
            continue;
        }
        let value = String::from_utf8(content.to_vec())
            .map_err(|_| ApiError::bad_request(format!("the multipart field {name} is not valid UTF-8")))?;
        fields.push((name, value));
    }
}

/// The `; key=value` parameters of a header value (after its first token),
/// values unquoted; a `;` inside quotes belongs to the value.
fn header_params(value: &str) -> Vec<(String, String)> {
    let mut pieces = Vec::new();
    let (mut cur, mut quoted, mut escaped) = (String::new(), false, false);
    for c in value.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => pieces.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    pieces.push(cur);
    pieces
        .into_iter()
        .skip(1)
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    // Exactly YYYY-MM-DD: chrono alone would also take "2024-1-5".
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    parse_date(s).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_and_form_syntax() {
        let p = Params::from_query("a=1&s%5B%5D=x&s[]=y&a=2&e=&sp=a+b%20c");
        assert_eq!(p.str("a").unwrap().as_deref(), Some("2"));
        assert_eq!(p.str_list("s").unwrap(), Some(vec!["x".into(), "y".into()]));
        assert_eq!(p.str("sp").unwrap().as_deref(), Some("a b c"));
        assert!(p.require(&["e"]).is_err());
        assert_eq!(p.int("e").unwrap(), None);
    }

    #[test]
    fn body_wins_over_query_and_bad_bodies_are_refused() {
        let mut p = Params::from_query("name=q&page=2");
        p.merge_body(Some("application/json"), br#"{"name":"b","scopes":["api"],"n":3}"#)
            .unwrap();
        assert_eq!(p.str("name").unwrap().as_deref(), Some("b"));
        assert_eq!(p.int("page").unwrap(), Some(2));
        assert_eq!(p.int("n").unwrap(), Some(3));
        assert_eq!(p.str_list("scopes").unwrap(), Some(vec!["api".into()]));
        let mut q = Params::default();
        assert!(matches!(
            q.merge_body(Some("application/json"), b"{\"name\":"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            q.merge_body(Some("application/json"), b"[1]"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            q.merge_body(Some("application/x-www-form-urlencoded"), b"a=\xff"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            q.merge_body(Some("text/plain"), b"hello"),
            Err(ApiError::UnsupportedMediaType)
        ));
        q.merge_body(None, b"scopes=api,read_user&x=1").unwrap();
        assert_eq!(
            q.str_list("scopes").unwrap(),
            Some(vec!["api".into(), "read_user".into()])
        );
    }

    #[test]
    fn multipart_bodies() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nmy token\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"scopes[]\"\r\n\r\napi\r\n\
--XyZ\r\ncontent-disposition: form-data; name=\"scopes[]\"\r\n\r\nread_user\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\n\
Content-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ--\r\n";
        let mut p = Params::default();
        p.merge_body(Some("multipart/form-data; boundary=XyZ"), body).unwrap();
        assert_eq!(p.str("name").unwrap().as_deref(), Some("my token"));
        assert_eq!(
            p.str_list("scopes").unwrap(),
            Some(vec!["api".into(), "read_user".into()])
        );
        assert!(!p.contains("avatar"));
        let mut q = Params::default();
        q.merge_body(Some("Multipart/Form-Data; boundary=\"XyZ\""), body)
            .unwrap();
        assert_eq!(q.str("name").unwrap().as_deref(), Some("my token"));
        // quoted `;` in names and boundaries, filename*, transport padding
        let odd = b"--a;b \r\nContent-Disposition: form-data; name=\"x;y\"\r\n\r\n1\r\n\
--a;b\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''a.txt\r\n\r\nfile\r\n--a;b--";
        let mut o = Params::default();
        o.merge_body(Some("multipart/form-data; boundary=\"a;b\""), odd)
            .unwrap();
        assert_eq!(o.str("x;y").unwrap().as_deref(), Some("1"));
        assert!(!o.contains("f") && !o.contains("x"));
        for (ct, bad) in [
            ("multipart/form-data", &body[..]),
            ("multipart/form-data; boundary=XyZ", &body[..40]),
            ("multipart/form-data; boundary=Other", &body[..]),
            (
                "multipart/form-data; boundary=XyZ",
                b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--",
            ),
        ] {
            let mut r = Params::default();
            assert!(
                matches!(r.merge_body(Some(ct), bad), Err(ApiError::BadRequest(_))),
                "{ct} {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn typed_getters() {
        let mut p = Params::default();
        p.merge_body(
            Some("application/json"),
            json!({"b": "TRUE", "c": 0, "d": "2024-02-30", "e": "2024-02-03", "f": [1], "g": {"x": 1},
                   "t": "2024-02-03T04:05:06.789Z", "u": "2024-02-03T04:05:06+02:00", "i": "12x"})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(p.bool("b").unwrap(), Some(true));
        assert_eq!(p.bool("c").unwrap(), Some(false));
        assert!(matches!(p.date("d"), Err(ApiError::InvalidParam(n)) if n == "d"));
        assert_eq!(p.date("e").unwrap(), NaiveDate::from_ymd_opt(2024, 2, 3));
        assert!(p.str("f").is_err() && p.str("g").is_err() && p.str_list("f").is_err());
        assert_eq!(
            p.datetime("t").unwrap().unwrap().to_rfc3339(),
            "2024-02-03T04:05:06.789+00:00"
        );
        assert_eq!(
            p.datetime("u").unwrap().unwrap().to_rfc3339(),
            "2024-02-03T02:05:06+00:00"
        );
        assert_eq!(
            p.datetime("e").unwrap().unwrap().to_rfc3339(),
            "2024-02-03T00:00:00+00:00"
        );
        assert!(p.int("i").is_err());
        assert!(matches!(p.one_of("b", &["x"]), Err(ApiError::NotAllowedValue(_))));
        assert!(parse_date("2024-1-05").is_none());
        let q = Params::from_query("a[]=1&a[]=2&b=3,4&c=x");
        assert_eq!(q.int_list("a").unwrap(), Some(vec![1, 2]));
        assert_eq!(q.int_list("b").unwrap(), Some(vec![3, 4]));
        assert!(q.int_list("c").is_err());
        let mut j = Params::default();
        j.merge_body(Some("application/json"), br#"{"a":[5,6],"b":[1.5]}"#)
            .unwrap();
        assert_eq!(j.int_list("a").unwrap(), Some(vec![5, 6]));
        assert!(j.int_list("b").is_err());
    }
}
