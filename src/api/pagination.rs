//! Pagination as GitLab does it. Offset pagination: `page` (from 1) and
//! `per_page` (default 20, at most 100) in, and `X-Total`, `X-Total-Pages`,
//! `X-Page`, `X-Per-Page`, `X-Next-Page`, `X-Prev-Page` and `Link` (rel
//! prev, next, first, last) out; past [`COUNT_LIMIT`] rows the list is not
//! counted, and `X-Total`, `X-Total-Pages` and the `last` link are left
//! out. Keyset pagination (`pagination=keyset`, where a list has it: by
//! id): `per_page` in, and only a `Link` rel next out, whose `id_after`
//! (ascending) or `id_before` (descending) names the page's last row.
//! Links are built from the request's own URL, with the credential
//! parameters (`private_token`, `access_token`, however spelled:
//! `redact::secret_key`) left out. The database does the paging
//! (`db::page::Listing`); `api::Ctx::fetch` asks it.

use super::error::ApiError;
use super::params::Params;
pub use crate::db::page::COUNT_LIMIT;

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
        Ok(Pagination {
            page,
            per_page: per_page(p)?,
        })
    }

    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    pub fn limit(&self) -> i64 {
        self.per_page
    }

    /// At least 1, as GitLab counts (an empty list has one empty page).
    pub fn total_pages(&self, total: i64) -> i64 {
        ((total + self.per_page - 1) / self.per_page).max(1)
    }

    /// The response headers for this page of a list of `total` rows
    /// (`None`: past [`COUNT_LIMIT`], not counted), `more` following it.
    pub fn headers(&self, total: Option<i64>, more: bool, url: &RequestUrl) -> Vec<(String, String)> {
        let pages = total.map(|t| self.total_pages(t));
        let next = more.then(|| self.page + 1);
        let prev = (self.page > 1).then(|| self.page - 1);
        let opt = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        let page_link = |page: i64| link(url, &[], &format!("page={page}&per_page={}", self.per_page));
        let mut links = Vec::new();
        if let Some(p) = prev {
            links.push(format!("<{}>; rel=\"prev\"", page_link(p)));
        }
        if let Some(n) = next {
            links.push(format!("<{}>; rel=\"next\"", page_link(n)));
        }
        links.push(format!("<{}>; rel=\"first\"", page_link(1)));
        if let Some(last) = pages {
            links.push(format!("<{}>; rel=\"last\"", page_link(last)));
        }
        let mut h = Vec::new();
        if let (Some(total), Some(pages)) = (total, pages) {
            h.push(("X-Total".into(), total.to_string()));
            h.push(("X-Total-Pages".into(), pages.to_string()));
        }
        h.extend([
            ("X-Page".into(), self.page.to_string()),
            ("X-Per-Page".into(), self.per_page.to_string()),
            ("X-Next-Page".into(), opt(next)),
            ("X-Prev-Page".into(), opt(prev)),
            ("Link".into(), links.join(", ")),
        ]);
        h
    }
}

/// `per_page` as both kinds of pagination read it.
fn per_page(p: &Params) -> Result<i64, ApiError> {
    Ok(match p.int("per_page")?.unwrap_or(DEFAULT_PER_PAGE) {
        n if n < 1 => DEFAULT_PER_PAGE,
        n => n.min(MAX_PER_PAGE),
    })
}

/// Whether a list, as ordered, may be paged by keyset: GitLab's lists
/// that have it do by id only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysetOrder {
    Unsupported,
    ById { desc: bool },
}

/// Keyset pagination by id: `per_page` rows after the cursor (the
/// list's own `id_after` / `id_before` filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    pub per_page: i64,
    pub desc: bool,
}

/// How a list is paged, as the request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    Offset(Pagination),
    Keyset(Keyset),
}

impl Paging {
    /// `pagination=keyset` where `keyset` allows it, else offset
    /// pagination; keyset pagination asked of a list (or an order) without
    /// it is GitLab's 405.
    pub fn from_params(p: &Params, keyset: KeysetOrder) -> Result<Paging, ApiError> {
        if p.str("pagination")?.as_deref() != Some("keyset") {
            return Ok(Paging::Offset(Pagination::from_params(p)?));
        }
        match keyset {
            KeysetOrder::ById { desc } => Ok(Paging::Keyset(Keyset {
                per_page: per_page(p)?,
                desc,
            })),
            KeysetOrder::Unsupported => Err(ApiError::KeysetUnavailable),
        }
    }
}

/// What the headers of a page say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageInfo {
    Offset {
        pagination: Pagination,
        /// `None` past [`COUNT_LIMIT`].
        total: Option<i64>,
        more: bool,
    },
    Keyset {
        keyset: Keyset,
        /// The id of the page's last row, when rows follow it.
        next_after: Option<i64>,
    },
}

impl PageInfo {
    pub fn headers(&self, url: &RequestUrl) -> Vec<(String, String)> {
        match self {
            PageInfo::Offset {
                pagination,
                total,
                more,
            } => pagination.headers(*total, *more, url),
            PageInfo::Keyset { keyset, next_after } => match next_after {
                None => Vec::new(),
                Some(id) => {
                    let cursor = if keyset.desc { "id_before" } else { "id_after" };
                    let next = link(
                        url,
                        &["id_after", "id_before"],
                        &format!("per_page={}&{cursor}={id}", keyset.per_page),
                    );
                    vec![("Link".into(), format!("<{next}>; rel=\"next\""))]
                }
            },
        }
    }
}

/// The request URL with `tail` for its paging: the other query parameters
/// as they came (minus credentials, `page`, `per_page` and `drop`), then
/// `tail`.
fn link(url: &RequestUrl, drop: &[&str], tail: &str) -> String {
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
            !(key == "page" || key == "per_page" || drop.contains(&key.as_str()) || crate::redact::secret_key(raw_key))
        })
        .collect();
    pairs.push(tail);
    format!("{}{}?{}", url.base, url.path, pairs.join("&"))
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
            Some(5),
            true,
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
        let empty = Pagination::default().headers(Some(0), false, &url(""));
        assert!(empty.contains(&("X-Total-Pages".to_string(), "1".to_string())));
        assert!(empty.contains(&("X-Next-Page".to_string(), String::new())));
    }

    #[test]
    fn uncounted_lists_have_no_totals_and_no_last_link() {
        let h = Pagination { page: 3, per_page: 20 }.headers(None, true, &url(""));
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Page", "X-Per-Page", "X-Next-Page", "X-Prev-Page", "Link"]);
        assert_eq!(
            h[4].1,
            "<http://h:1/api/v4/users?page=2&per_page=20>; rel=\"prev\", \
             <http://h:1/api/v4/users?page=4&per_page=20>; rel=\"next\", \
             <http://h:1/api/v4/users?page=1&per_page=20>; rel=\"first\""
        );
    }

    #[test]
    fn keyset_paging() {
        let q = |s: &str, k| Paging::from_params(&Params::from_query(s), k);
        let by_id = KeysetOrder::ById { desc: false };
        assert_eq!(
            q("pagination=keyset&per_page=500", by_id).unwrap(),
            Paging::Keyset(Keyset {
                per_page: 100,
                desc: false
            })
        );
        assert!(matches!(
            q("pagination=keyset", KeysetOrder::Unsupported),
            Err(ApiError::KeysetUnavailable)
        ));
        assert!(matches!(
            q("pagination=offset", KeysetOrder::Unsupported),
            Ok(Paging::Offset(_))
        ));
        let info = |desc, next_after| PageInfo::Keyset {
            keyset: Keyset { per_page: 2, desc },
            next_after,
        };
        let u = url("pagination=keyset&order_by=id&per_page=2&id_after=7&private_token=x");
        assert_eq!(
            info(false, Some(9)).headers(&u),
            [(
                "Link".to_string(),
                "<http://h:1/api/v4/users?pagination=keyset&order_by=id&per_page=2&id_after=9>; rel=\"next\""
                    .to_string()
            )]
        );
        assert!(info(true, Some(3)).headers(&u)[0]
            .1
            .ends_with("per_page=2&id_before=3>; rel=\"next\""));
        assert!(info(false, None).headers(&u).is_empty());
    }
}
