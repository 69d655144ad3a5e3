//! Lists the database filters, sorts and pages itself: a [`Listing`] is
//! one filtered, ordered query, asked for a window of its rows (`LIMIT` /
//! `OFFSET`) and how many rows it has, counted no further than a bound. [`Listing::page`] puts them together as GitLab counts: the total is
//! told up to [`COUNT_LIMIT`] rows only, so a page of a huge list never
//! counts it whole.
//!
//! [`binary`] makes a text comparison by code point on both backends
//! (PostgreSQL's default collation follows the locale; SQLite's `BINARY`
//! already compares UTF-8 bytes), so that sorts by name are the same on
//! each; [`folded`] case-folds text for a `LIKE` as each backend needs.

use diesel::backend::Backend;
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::QueryResult;

use super::DbConn;

/// Past this many rows a list's total is not counted (GitLab omits
/// `X-Total` and `X-Total-Pages` then).
pub const COUNT_LIMIT: i64 = 10_000;

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    /// The rows of the whole list; `None` past [`COUNT_LIMIT`].
    pub total: Option<i64>,
    /// Whether rows follow this page.
    pub more: bool,
}

/// A filtered, ordered query over one kind of row.
pub trait Listing {
    type Row;

    /// The rows from `offset` on, in the list's order: at most `limit`
    /// (all of them when `None`).
    fn rows(&self, conn: &mut DbConn, offset: i64, limit: Option<i64>) -> QueryResult<Vec<Self::Row>>;

    /// How many rows the list has, counting no further than `limit`.
    fn count_upto(&self, conn: &mut DbConn, limit: i64) -> QueryResult<i64>;

    /// The id a keyset cursor names a row by.
    fn row_id(row: &Self::Row) -> i64;

    /// Every row, in order.
    fn all(&self, conn: &mut DbConn) -> QueryResult<Vec<Self::Row>> {
        self.rows(conn, 0, None)
    }

    /// `limit` rows from `offset`, whether more follow, and the total as
    /// far as [`COUNT_LIMIT`]: one query when the page shows the list's
    /// end, else a count that stops past `COUNT_LIMIT`.
    fn page(&self, conn: &mut DbConn, offset: i64, limit: i64) -> QueryResult<Page<Self::Row>> {
        let mut rows = self.rows(conn, offset, Some(limit.saturating_add(1)))?;
        let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let shown = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let known = offset.saturating_add(shown).saturating_add(i64::from(more));
        let total = if known > COUNT_LIMIT {
            None
        } else if !more && (shown > 0 || offset == 0) {
            Some(offset + shown)
        } else {
            Some(self.count_upto(conn, COUNT_LIMIT + 1)?).filter(|n| *n <= COUNT_LIMIT)
        };
        Ok(Page { rows, total, more })
    }
}

/// Applies `rows`' window to a boxed query.
macro_rules! window {
    ($q:expr, $offset:expr, $limit:expr) => {{
        let q = $q;
        let q = match $limit {
            Some(l) => q.limit(l),
            None if $offset > 0 => q.limit(i64::MAX),
            None => q,
        };
        if $offset > 0 {
            q.offset($offset)
        } else {
            q
        }
    }};
}
pub(crate) use window;

/// Orders a boxed query by each expression, all ascending or all
/// descending.
macro_rules! order_all {
    ($q:expr, $desc:expr, $first:expr $(, $rest:expr)* $(,)?) => {{
        if $desc {
            $q.order_by($first.desc())$(.then_order_by($rest.desc()))*
        } else {
            $q.order_by($first.asc())$(.then_order_by($rest.asc()))*
        }
    }};
}
pub(crate) use order_all;

/// A text expression as one backend needs it and the other does not:
/// PostgreSQL gets `prefix expr suffix`, SQLite `expr` (see [`binary`]
/// and [`folded`]).
#[derive(Debug, Clone, Copy)]
pub struct OnPostgres<E> {
    expr: E,
    wrap: Option<(&'static str, &'static str)>,
}

/// `expr` compared by code point: `COLLATE "C"` on PostgreSQL (whose
/// default collation follows the locale), as it is on SQLite (whose
/// default collation is already bytewise).
pub fn binary<E>(conn: &DbConn, expr: E) -> OnPostgres<E> {
    OnPostgres {
        expr,
        wrap: matches!(conn, DbConn::Pg(_)).then_some(("(", ") COLLATE \"C\"")),
    }
}

/// `expr` case-folded for a `LIKE` with a lowercase pattern: `lower(expr)`
/// on PostgreSQL; on SQLite `expr` itself, as its `LIKE` folds ASCII
/// letters (and its `lower()` folds no others), at a third of the cost.
pub fn folded<E>(conn: &DbConn, expr: E) -> OnPostgres<E> {
    OnPostgres {
        expr,
        wrap: matches!(conn, DbConn::Pg(_)).then_some(("lower(", ")")),
    }
}

impl<E: Expression> Expression for OnPostgres<E> {
    type SqlType = E::SqlType;
}

impl<E, DB> QueryFragment<DB> for OnPostgres<E>
where
    DB: Backend,
    E: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        match self.wrap {
            Some((prefix, suffix)) => {
                out.push_sql(prefix);
                self.expr.walk_ast(out.reborrow())?;
                out.push_sql(suffix);
                Ok(())
            }
            None => self.expr.walk_ast(out),
        }
    }
}

/// The SQL depends on the backend: not a static query id.
impl<E> QueryId for OnPostgres<E> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<E: ValidGrouping<GB>, GB> ValidGrouping<GB> for OnPostgres<E> {
    type IsAggregate = E::IsAggregate;
}

impl<E: AppearsOnTable<QS>, QS> AppearsOnTable<QS> for OnPostgres<E> {}

impl<E: SelectableExpression<QS>, QS> SelectableExpression<QS> for OnPostgres<E> {}

/// A `LIKE` pattern matching text that contains `s` (`%`, `_` and `\`
/// escaped; use with `.escape('\\')`).
pub fn contains_pattern(s: &str) -> String {
    format!("%{}%", escape_like(s))
}

/// `s` with `LIKE`'s wildcards (and the escape character `\`) escaped.
pub fn escape_like(s: &str) -> String {
    let mut p = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p
}

/// The smallest text greater than every text that starts with `prefix`
/// (its last character incremented), for a prefix as an indexed range
/// `[prefix, upper)`; `None` when there is none.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_wildcards() {
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
        assert_eq!(escape_like("al_ice/"), "al\\_ice/");
        assert_eq!(prefix_upper_bound("alice/").as_deref(), Some("alice0"));
        assert_eq!(prefix_upper_bound("").as_deref(), None);
    }

    struct Numbers(i64);

    impl Listing for Numbers {
        type Row = i64;
        fn rows(&self, _: &mut DbConn, offset: i64, limit: Option<i64>) -> QueryResult<Vec<i64>> {
            Ok((offset..self.0)
                .take(limit.map_or(usize::MAX, |l| l as usize))
                .collect())
        }
        fn count_upto(&self, _: &mut DbConn, limit: i64) -> QueryResult<i64> {
            Ok(self.0.min(limit))
        }
        fn row_id(row: &i64) -> i64 {
            *row
        }
    }

    #[test]
    fn totals_are_counted_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::establish(&super::super::sqlite_url_for(dir.path())).unwrap();
        let mut page = |n: i64, offset: i64, limit: i64| Numbers(n).page(&mut conn, offset, limit).unwrap();
        let p = page(5, 0, 2);
        assert_eq!((p.rows, p.total, p.more), (vec![0, 1], Some(5), true));
        let p = page(5, 4, 2);
        assert_eq!((p.rows, p.total, p.more), (vec![4], Some(5), false));
        let p = page(5, 10, 2);
        assert_eq!((p.rows, p.total, p.more), (vec![], Some(5), false));
        let p = page(10_000, 0, 20);
        assert_eq!((p.total, p.more), (Some(10_000), true));
        let p = page(10_001, 0, 20);
        assert_eq!((p.total, p.more), (None, true));
        let p = page(10_001, 10_000, 20);
        assert_eq!((p.rows, p.total, p.more), (vec![10_000], None, false));
        let p = page(10_000, 9_980, 20);
        assert_eq!((p.total, p.more), (Some(10_000), false));
    }
}
