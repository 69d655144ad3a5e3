//! Offset pagination as GitLab does it: `page` (from 1) and `per_page`
//! (default 20, at most 100) in, and `X-Total`, `X-Total-Pages`, `X-Page`,
//! `X-Per-Page`, `X-Next-Page`, `X-Prev-Page` and `Link` (rel prev, next,
//! first, last) out. Links are built from the request's own URL, with the
//! credential parameters (`private_token`, `access_token`, however spelled:
//! `redact::secret_key`) left out.

use super::error::ApiError;
use super::params::Params;

pub const DEFAULT_PER_PAGE: i64 = 20;
pub const MAX_PER_PAGE: i64 = 100;
/// Pages past this are refused (keeps `page * per_page` far from overflow).
pub const MAX_PAGE: i64 = 1_000_000_000;

/// Where the request was sent: `base` is `scheme://host[:port]`, `path` the
/// path as received, `query` the raw query string (no `?`).
#[derive(Debug, Clone, Default)]
pub struct RequestUrl {
    pub base: String,
    pub path: String,
    pub query: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub page: i64,
    pub per_page: i64,
}

impl Default for Pagination {
    fn default() -> Self {
        Pagination {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

impl Pagination {
    /// Reads `page` and `per_page`: a page below 1 is page 1, a `per_page`
    /// below 1 the default, above 100 is 100; text that is not a number
    /// is `{"error":"page is invalid"}`.
    pub fn from_params(p: &Params) -> Result<Pagination, ApiError> {
        let page = p.int("page")?.unwrap_or(1).max(1);
        if page > MAX_PAGE {
            return Err(ApiError::InvalidParam("page".into()));
        }
        let per_page = match p.int("per_page")?.unwrap_or(DEFAULT_PER_PAGE) {
            n if n < 1 => DEFAULT_PER_PAGE,
            n => n.min(MAX_PER_PAGE),
        };
        Ok(Pagination { page, per_page })
    }

    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    pub fn limit(&self) -> i64 {
        self.per_page
    }

    /// This page of an in-memory list.
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        let offset = usize::try_from(self.offset()).unwrap_or(usize::MAX);
        items
            .into_iter()
            .skip(offset)
            .take(usize::try_from(self.per_page).unwrap_or(0))
            .collect()
    }

    /// At least 1, as GitLab counts (an empty list has one empty page).
    pub fn total_pages(&self, total: i64) -> i64 {
        ((total + self.per_page - 1) / self.per_page).max(1)
    }

    /// The response headers for a list of `total` items.
    pub fn headers(&self, total: i64, url: &RequestUrl) -> Vec<(String, String)> {
        let pages = self.total_pages(total);
        let next = (self.page < pages).then(|| self.page + 1);
        let prev = (self.page > 1).then(|| self.page - 1);
        let opt = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        let mut links = Vec::new();
        if let Some(p) = prev {
            links.push(format!("<{}>; rel=\"prev\"", self.link(url, p)));
        }
        if let Some(n) = next {
            links.push(format!("<{}>; rel=\"next\"", self.link(url, n)));
        }
        links.push(format!("<{}>; rel=\"first\"", self.link(url, 1)));
        links.push(format!("<{}>; rel=\"last\"", self.link(url, pages)));
        vec![
            ("X-Total".into(), total.to_string()),
            ("X-Total-Pages".into(), pages.to_string()),
            ("X-Page".into(), self.page.to_string()),
            ("X-Per-Page".into(), self.per_page.to_string()),
            ("X-Next-Page".into(), opt(next)),
            ("X-Prev-Page".into(), opt(prev)),
            ("Link".into(), links.join(", ")),
        ]
    }

    /// The request URL for `page`: the other query parameters as they came
    /// (minus credentials), then `page` and `per_page`.
    fn link(&self, url: &RequestUrl, page: i64) -> String {
        let mut pairs: Vec<&str> = url
            .query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let raw_key = pair.split('=').next().unwrap_or_default();
                let key: String = form_urlencoded::parse(raw_key.as_bytes())
                    .next()
                    .map(|(k, _)| k.into_owned())
                    .unwrap_or_default();
                !(key == "page" || key == "per_page" || crate::redact::secret_key(raw_key))
            })
            .collect();
        let tail = format!("page={page}&per_page={}", self.per_page);
        pairs.push(&tail);
        format!("{}{}?{}", url.base, url.path, pairs.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(q: &str) -> RequestUrl {
        RequestUrl {
            base: "http://h:1".into(),
            path: "/api/v4/users".into(),
            query: q.into(),
        }
    }

    #[test]
    fn reading_page_and_per_page() {
        let p = |q: &str| Pagination::from_params(&Params::from_query(q));
        assert_eq!(p("").unwrap(), Pagination { page: 1, per_page: 20 });
        assert_eq!(p("page=0&per_page=500").unwrap(), Pagination { page: 1, per_page: 100 });
        assert_eq!(p("page=3&per_page=0").unwrap(), Pagination { page: 3, per_page: 20 });
        assert!(matches!(p("page=x"), Err(ApiError::InvalidParam(n)) if n == "page"));
        assert!(matches!(p("per_page=1.5"), Err(ApiError::InvalidParam(n)) if n == "per_page"));
        assert!(p("page=99999999999").is_err());
    }

    #[test]
    fn headers_and_links() {
        let p = Pagination { page: 2, per_page: 2 };
        let h = p.headers(
            5,
            &url("search=a%20b&private_token=s3cret&page=2&per_page=2&private%5Ftoken=x"),
        );
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap();
        assert_eq!(get("X-Total"), "5");
        assert_eq!(get("X-Total-Pages"), "3");
        assert_eq!(get("X-Page"), "2");
        assert_eq!(get("X-Per-Page"), "2");
        assert_eq!(get("X-Next-Page"), "3");
        assert_eq!(get("X-Prev-Page"), "1");
        assert_eq!(
            get("Link"),
            "<http://h:1/api/v4/users?search=a%20b&page=1&per_page=2>; rel=\"prev\", \
             <http://h:1/api/v4/users?search=a%20b&page=3&per_page=2>; rel=\"next\", \
             <http://h:1/api/v4/users?search=a%20b&page=1&per_page=2>; rel=\"first\", \
             <http://h:1/api/v4/users?search=a%20b&page=3&per_page=2>; rel=\"last\""
        );
        assert!(!get("Link").contains("s3cret"));
        let empty = Pagination::default().headers(0, &url(""));
        assert!(empty.contains(&("X-Total-Pages".to_string(), "1".to_string())));
        assert!(empty.contains(&("X-Next-Page".to_string(), String::new())));
        assert_eq!(
            Pagination { page: 2, per_page: 2 }.slice(vec![1, 2, 3, 4, 5]),
            vec![3, 4]
        );
    }
}
