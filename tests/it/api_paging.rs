//! Paging in SQL (issue 16): every list endpoint walked page by page
//! (`per_page=7`) under each of its filters and orders gives, concatenated,
//! the rows the in-memory rules gitpat had before gave (ported here as the
//! oracle: filters, case-insensitive sorts, ties broken by id), with the
//! offset headers on each page; keyset walks on `/users` and `/projects`;
//! and the totals left out past 10,000 rows. Every test runs on every
//! backend; messages name it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use gitpat::db::{self, member::Member, project::Project, token::TokenRow, user::User};
use serde_json::json;

use crate::api_users::{assert_pages, links, warm};
use crate::support::api::{expect, status};
use crate::support::server::TestServer;

const PER_PAGE: usize = 7;

/// The query string as a map (later values win).
fn query_map(q: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn directed(o: Ordering, desc: bool) -> Ordering {
    if desc {
        o.reverse()
    } else {
        o
    }
}

fn sql(srv: &TestServer, statements: &str) {
    srv.conn()
        .batch_execute(statements)
        .unwrap_or_else(|e| panic!("[{}] {statements}: {e}", srv.backend()));
}

/// Walks `path?query` page by page and asserts the rows (by `key`, an
/// integer field) are `want`, in order, with the offset headers of each
/// page; then one page past the end, empty.
#[track_caller]
fn walk(srv: &TestServer, token: Option<&str>, path: &str, query: &str, key: &str, want: &[i64]) {
    let what = format!("GET {path}?{query}");
    let others = if query.is_empty() {
        String::new()
    } else {
        format!("{query}&")
    };
    let pages = want.len().div_ceil(PER_PAGE).max(1);
    let mut seen = Vec::new();
    for page in 1..=pages + 1 {
        let r = srv.api(
            "GET",
            &format!("{path}?{others}page={page}&per_page={PER_PAGE}"),
            token,
            None,
        );
        status(srv, &format!("{what} page {page}"), &r, 200);
        assert_pages(
            srv,
            &format!("{what} page {page}"),
            &r,
            (&format!("/api/v4{path}"), &others),
            want.len(),
            page,
            PER_PAGE,
        );
        let rows: Vec<i64> = r
            .list()
            .iter()
            .map(|v| v[key].as_i64().unwrap_or_else(|| panic!("no {key} in {v}")))
            .collect();
        if page > pages {
            assert!(rows.is_empty(), "[{}] {what}: past the end: {rows:?}", srv.backend());
        }
        seen.extend(rows);
    }
    assert_eq!(seen, want, "[{}] {what}: the pages together", srv.backend());
}

// ---------------------------------------------------------------------
// The oracles: the rules as gitpat applied them in memory.

fn users_oracle(all: &[User], admin: bool, q: &str) -> Vec<i64> {
    let q = query_map(q);
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true");
    let search = q
        .get("search")
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let order_by = q.get("order_by").map(String::as_str).unwrap_or("id");
    let desc = q.get("sort").is_none_or(|s| s == "desc");
    let mut found: Vec<&User> = all
        .iter()
        .filter(|u| admin || !u.is_blocked())
        .filter(|u| {
            search.as_ref().is_none_or(|s| {
                u.username.to_lowercase().contains(s)
                    || u.name.to_lowercase().contains(s)
                    || (admin && u.email.to_lowercase().contains(s))
            })
        })
        .filter(|u| q.get("username").is_none_or(|n| u.username.eq_ignore_ascii_case(n)))
        .filter(|u| !flag("active") || !u.is_blocked())
        .filter(|u| !flag("blocked") || u.is_blocked())
        .collect();
    found.sort_by(|a, b| {
        let o = match order_by {
            "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
            "username" => a.username.to_lowercase().cmp(&b.username.to_lowercase()),
            "created_at" | "updated_at" => a.created_at.cmp(&b.created_at),
            _ => Ordering::Equal,
        }
        .then(a.id.cmp(&b.id));
        directed(o, desc)
    });
    found.iter().map(|u| u.id).collect()
}

fn cmp_opt<T: Ord>(a: &Option<T>, b: &Option<T>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn at(s: &str) -> NaiveDateTime {
    chrono::DateTime::parse_from_rfc3339(s).expect("a time").naive_utc()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
}

/// `viewer`: `None` for an admin (every token), else the user's own PATs.
fn tokens_oracle(all: &[TokenRow], viewer: Option<i64>, enforce: bool, q: &str) -> Vec<i64> {
    let q = query_map(q);
    let today = Utc::now().date_naive();
    let active = |t: &TokenRow| !(t.revoked || (enforce && t.expires_at.is_some_and(|d| today >= d)));
    let owner = viewer.or_else(|| q.get("user_id").map(|u| u.parse().expect("user_id")));
    let search = q.get("search").map(|s| s.to_lowercase());
    let mut rows: Vec<&TokenRow> = all
        .iter()
        .filter(|t| owner.is_none_or(|o| t.user_id == o))
        .filter(|t| viewer.is_none() || !t.impersonation)
        .filter(|t| q.get("revoked").is_none_or(|r| t.revoked == (r == "true")))
        .filter(|t| q.get("state").is_none_or(|s| active(t) == (s == "active")))
        .filter(|t| q.get("created_before").is_none_or(|d| t.created_at <= at(d)))
        .filter(|t| q.get("created_after").is_none_or(|d| t.created_at >= at(d)))
        .filter(|t| {
            q.get("last_used_before")
                .is_none_or(|d| t.last_used_at.is_some_and(|u| u <= at(d)))
        })
        .filter(|t| {
            q.get("last_used_after")
                .is_none_or(|d| t.last_used_at.is_some_and(|u| u >= at(d)))
        })
        .filter(|t| {
            q.get("expires_before")
                .is_none_or(|d| t.expires_at.is_some_and(|e| e < day(d)))
        })
        .filter(|t| {
            q.get("expires_after")
                .is_none_or(|d| t.expires_at.is_some_and(|e| e >= day(d)))
        })
        .filter(|t| search.as_ref().is_none_or(|s| t.name.to_lowercase().contains(s)))
        .collect();
    if let Some(sort) = q.get("sort") {
        let (key, desc) = sort.rsplit_once('_').map(|(k, d)| (k, d == "desc")).expect("a sort");
        rows.sort_by(|a, b| {
            let o = match key {
                "created" => a.created_at.cmp(&b.created_at),
                "expires" => cmp_opt(&a.expires_at, &b.expires_at),
                "last_used" => cmp_opt(&a.last_used_at, &b.last_used_at),
                "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
                _ => a.id.cmp(&b.id),
            };
            directed(o, desc).then(a.id.cmp(&b.id))
        });
    }
    rows.iter().map(|t| t.id).collect()
}

/// `viewer`: `None` for anonymous.
fn projects_oracle(all: &[Project], members: &[Member], viewer: Option<&User>, q: &str) -> Vec<i64> {
    let q = query_map(q);
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true");
    let today = Utc::now().date_naive();
    let my_id = viewer.map(|u| u.id);
    let member_of: HashMap<i64, i32> = members
        .iter()
        .filter(|m| Some(m.user_id) == my_id && m.active_on(today))
        .map(|m| (m.project_id, m.access_level))
        .collect();
    let visible = |p: &Project| match viewer {
        None => p.visibility == "public",
        Some(u) if u.is_blocked() => false,
        Some(u) => u.is_admin || p.visibility != "private" || p.owner_id == u.id || member_of.contains_key(&p.id),
    };
    let level = |p: &Project| {
        if my_id == Some(p.owner_id) {
            Some(50)
        } else {
            member_of.get(&p.id).copied()
        }
    };
    let search = q.get("search").map(|s| s.to_lowercase());
    let min: Option<i32> = q.get("min_access_level").map(|l| l.parse().expect("a level"));
    let order_by = q.get("order_by").map(String::as_str).unwrap_or("created_at");
    let desc = q.get("sort").is_none_or(|s| s == "desc");
    let mut found: Vec<&Project> = all
        .iter()
        .filter(|p| visible(p))
        .filter(|p| !flag("owned") || my_id == Some(p.owner_id))
        .filter(|p| !flag("membership") || my_id == Some(p.owner_id) || member_of.contains_key(&p.id))
        .filter(|p| q.get("visibility").is_none_or(|v| &p.visibility == v))
        .filter(|p| {
            search
                .as_ref()
                .is_none_or(|s| p.name.to_lowercase().contains(s) || p.path.to_lowercase().contains(s))
        })
        .filter(|p| min.is_none_or(|m| level(p).is_some_and(|l| l >= m)))
        .filter(|_| !flag("starred") && !flag("archived"))
        .collect();
    found.sort_by(|a, b| {
        let o = match order_by {
            "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
            "path" => a.path.to_lowercase().cmp(&b.path.to_lowercase()),
            "updated_at" | "last_activity_at" => a.last_activity_at.cmp(&b.last_activity_at),
            "created_at" => a.created_at.cmp(&b.created_at),
            _ => Ordering::Equal,
        }
        .then(a.id.cmp(&b.id));
        directed(o, desc)
    });
    found.iter().map(|p| p.id).collect()
}

fn members_oracle(users: &[User], project: &Project, members: &[Member], q: &str) -> Vec<i64> {
    let q = query_map(q);
    let query = q.get("query").map(|s| s.to_lowercase());
    let ids: Option<HashSet<i64>> = q
        .get("user_ids")
        .map(|s| s.split(',').map(|i| i.parse().expect("an id")).collect());
    let by_id: HashMap<i64, &User> = users.iter().map(|u| (u.id, u)).collect();
    let mut entries = vec![project.owner_id];
    let mut others: Vec<i64> = members
        .iter()
        .filter(|m| m.project_id == project.id && m.user_id != project.owner_id)
        .map(|m| m.user_id)
        .collect();
    others.sort();
    entries.extend(others);
    entries
        .into_iter()
        .filter(|id| {
            let u = by_id[id];
            query
                .as_ref()
                .is_none_or(|q| u.username.to_lowercase().contains(q) || u.name.to_lowercase().contains(q))
        })
        .filter(|id| ids.as_ref().is_none_or(|ids| ids.contains(id)))
        .collect()
}

// ---------------------------------------------------------------------
// The world: users, projects, members and tokens with ties in every order.

const USERNAMES: [&str; 28] = [
    "kilo", "Alpha", "bravo", "Charlie", "delta", "Echo", "fox-trot", "fox.trot", "fox_trot", "golf", "Hotel", "india",
    "Juliet", "lima", "Mike", "november", "Oscar", "papa", "Quebec", "romeo", "Sierra", "tango", "Uniform", "victor",
    "Whiskey", "x-ray", "Yankee", "zulu",
];

/// Display names, project names and token names: case and punctuation
/// variants, a non-ASCII (lowercase) one, repeats (ties).
const NAMES: [&str; 9] = [
    "Same Name",
    "same name",
    "a-b",
    "ab",
    "a_b",
    "émile",
    "Zed",
    "tool",
    "TOOL x",
];

struct World {
    root: (i64, String),
    kilo: (i64, String),
    bravo: i64,
    /// bravo's project with many members.
    team: i64,
    /// The tokens the requests authenticate with (their use is recorded).
    auth_tokens: Vec<i64>,
}

fn world(srv: &TestServer) -> World {
    if srv.backend() == "postgres" {
        // A database in a locale sorts text otherwise than by code point
        // (ICU's root collation: `_` before `-`, `é` beside `e`); the
        // lists must sort as before all the same.
        sql(
            srv,
            "ALTER TABLE users ALTER COLUMN name TYPE TEXT COLLATE \"und-x-icu\"; \
             ALTER TABLE users ALTER COLUMN username TYPE TEXT COLLATE \"und-x-icu\"; \
             ALTER TABLE projects ALTER COLUMN name TYPE TEXT COLLATE \"und-x-icu\"; \
             ALTER TABLE projects ALTER COLUMN path TYPE TEXT COLLATE \"und-x-icu\"; \
             ALTER TABLE personal_access_tokens ALTER COLUMN name TYPE TEXT COLLATE \"und-x-icu\"",
        );
    }
    let root = srv.user("root", true, None);
    let rt = srv.token("root", &["api"], None);
    let mut ids = Vec::new();
    for name in USERNAMES {
        ids.push(srv.user(name, false, None).id);
    }
    let kt = srv.token("kilo", &["api"], None);
    warm(srv, &[&rt, &kt]);
    let auth_tokens = vec![srv.token_row(&rt).id, srv.token_row(&kt).id];
    // Names with ties, some blocked (not kilo), created at three times.
    for (i, id) in ids.iter().enumerate() {
        let name = NAMES[i % NAMES.len()];
        let state = if i % 5 == 3 { "blocked" } else { "active" };
        let created = format!("2030-01-0{} 00:00:00", i % 3 + 1);
        sql(
            srv,
            &format!("UPDATE users SET name = '{name}', state = '{state}', created_at = '{created}' WHERE id = {id}"),
        );
    }
    // Projects of root, kilo, Alpha and bravo, every visibility.
    let owners = ["root", "kilo", "Alpha", "bravo"];
    let vis = ["private", "internal", "public"];
    let mut projects = Vec::new();
    for i in 0..30 {
        let owner = owners[i % owners.len()];
        let p = srv.repo(&format!("{owner}/p{i:02}"), owner, vis[i % 3]);
        projects.push((p.id, owner));
    }
    for (i, (id, _)) in projects.iter().enumerate() {
        let name = NAMES[i % NAMES.len()];
        let created = format!("2030-02-0{} 00:00:00", i % 3 + 1);
        let active = format!("2030-03-0{} 00:00:00", i % 4 + 1);
        sql(
            srv,
            &format!(
                "UPDATE projects SET name = '{name}', created_at = '{created}', last_activity_at = '{active}' \
                 WHERE id = {id}"
            ),
        );
    }
    // kilo in bravo's projects at each level; one membership expired, one
    // expiring later.
    let levels = ["guest", "reporter", "developer", "maintainer", "owner"];
    let bravos: Vec<i64> = projects
        .iter()
        .filter(|(_, o)| *o == "bravo")
        .map(|(id, _)| *id)
        .collect();
    for (i, id) in bravos.iter().enumerate().take(6) {
        let path = format!("bravo/p{:02}", projects.iter().position(|(p, _)| p == id).unwrap_or(0));
        srv.member(&path, "kilo", levels[i % levels.len()]);
    }
    let yesterday = (Utc::now().date_naive() - chrono::Duration::days(1)).format("%Y-%m-%d");
    let later = (Utc::now().date_naive() + chrono::Duration::days(30)).format("%Y-%m-%d");
    let kilo = ids[0];
    sql(
        srv,
        &format!(
            "UPDATE project_members SET expires_at = '{yesterday}' WHERE user_id = {kilo} AND project_id = {}; \
             UPDATE project_members SET expires_at = '{later}' WHERE user_id = {kilo} AND project_id = {}",
            bravos[1], bravos[2]
        ),
    );
    // A team: bravo's first project with most users as members.
    let team_path = format!(
        "bravo/p{:02}",
        projects.iter().position(|(p, _)| *p == bravos[0]).unwrap_or(0)
    );
    for (i, name) in USERNAMES.iter().enumerate().skip(1) {
        if *name != "bravo" && i % 4 != 0 {
            srv.member(&team_path, name, levels[i % 4]);
        }
    }
    // Tokens of root and kilo (and a few impersonation ones), with names,
    // dates and states in ties.
    for i in 0..24 {
        let who = if i % 2 == 0 { "root" } else { "kilo" };
        srv.token(who, &["read_api"], None);
    }
    let rows = db::token::list(&mut srv.conn(), None).expect("tokens");
    for (i, t) in rows.iter().filter(|t| !auth_tokens.contains(&t.id)).enumerate() {
        let name = NAMES[i % NAMES.len()];
        let expires = ["NULL", "'2031-01-01'", "'2032-06-01'", "'2031-01-01'", "'2020-01-01'"][i % 5];
        let used = ["NULL", "'2030-05-01 10:00:00'", "'2030-05-02 10:00:00'"][i % 3];
        let created = format!("2030-04-0{} 00:00:00", i % 3 + 1);
        let revoked = if i % 4 == 1 { "TRUE" } else { "FALSE" };
        let imp = if i % 7 == 3 { "TRUE" } else { "FALSE" };
        sql(
            srv,
            &format!(
                "UPDATE personal_access_tokens SET name = '{name}', expires_at = {expires}, last_used_at = {used}, \
                 created_at = '{created}', revoked = {revoked}, impersonation = {imp} WHERE id = {}",
                t.id
            ),
        );
    }
    World {
        root: (root.id, rt),
        kilo: (kilo, kt),
        bravo: ids[2],
        team: bravos[0],
        auth_tokens,
    }
}

// ---------------------------------------------------------------------

#[test]
fn user_lists_page_in_sql_as_they_filtered_and_sorted_in_memory() {
    for srv in TestServer::each() {
        let w = world(&srv);
        let cases = [
            "",
            "sort=asc",
            "order_by=id&sort=desc",
            "order_by=name",
            "order_by=name&sort=asc",
            "order_by=username&sort=asc",
            "order_by=username",
            "order_by=created_at",
            "order_by=updated_at&sort=asc",
            "search=fox",
            "search=SAME",
            "search=a_b",
            "search=%25",
            "search=example.com",
            "search=%20kilo%20",
            "active=true",
            "blocked=true",
            "active=true&blocked=true",
            "username=ALPHA",
            "active=true&order_by=name&sort=asc",
            "search=e&order_by=username",
        ];
        for (admin, token) in [(true, &w.root.1), (false, &w.kilo.1)] {
            for q in cases {
                let all = db::user::list(&mut srv.conn()).expect("users");
                let want = users_oracle(&all, admin, q);
                walk(&srv, Some(token), "/users", q, "id", &want);
            }
        }
    }
}

#[test]
fn token_lists_page_in_sql_as_they_filtered_and_sorted_in_memory() {
    for srv in TestServer::each() {
        let w = world(&srv);
        let mut cases = vec![
            "".to_string(),
            "revoked=true".into(),
            "revoked=false".into(),
            "state=active".into(),
            "state=inactive".into(),
            "search=SAME".into(),
            "search=a_b".into(),
            "search=%C3%A9".into(),
            "created_before=2030-04-02T00:00:00Z".into(),
            "created_after=2030-04-02T00:00:00Z".into(),
            "last_used_before=2030-05-01T10:00:00Z".into(),
            "last_used_after=2030-05-01T10:00:00Z".into(),
            "expires_before=2031-01-01".into(),
            "expires_after=2031-01-01".into(),
            "state=active&sort=name_desc".into(),
            "revoked=false&search=tool&sort=expires_asc".into(),
        ];
        for sort in [
            "id_asc",
            "id_desc",
            "created_asc",
            "created_desc",
            "expires_asc",
            "expires_desc",
            "last_used_asc",
            "last_used_desc",
            "name_asc",
            "name_desc",
        ] {
            cases.push(format!("sort={sort}"));
        }
        let kilo_only = format!("user_id={}&sort=name_asc", w.kilo.0);
        for enforce in [true, false] {
            srv.setting("enforce_personal_access_token_expiration", &enforce.to_string());
            for (viewer, token) in [(None, &w.root.1), (Some(w.kilo.0), &w.kilo.1)] {
                for q in cases.iter().chain([&kilo_only]) {
                    if viewer.is_some() && q.starts_with("user_id") {
                        continue;
                    }
                    let all = db::token::list(&mut srv.conn(), None).expect("tokens");
                    let want = tokens_oracle(&all, viewer, enforce, q);
                    walk(&srv, Some(token), "/personal_access_tokens", q, "id", &want);
                }
            }
            // The impersonation tokens of kilo, by state.
            for state in ["", "state=all", "state=active", "state=inactive"] {
                let all = db::token::list(&mut srv.conn(), None).expect("tokens");
                let today = Utc::now().date_naive();
                let want: Vec<i64> = all
                    .iter()
                    .filter(|t| t.user_id == w.kilo.0 && t.impersonation)
                    .filter(|t| {
                        let active = !(t.revoked || (enforce && t.expires_at.is_some_and(|d| today >= d)));
                        match state {
                            "state=active" => active,
                            "state=inactive" => !active,
                            _ => true,
                        }
                    })
                    .map(|t| t.id)
                    .collect();
                let path = format!("/users/{}/impersonation_tokens", w.kilo.0);
                walk(&srv, Some(&w.root.1), &path, state, "id", &want);
            }
        }
        assert!(w.auth_tokens.len() == 2);
    }
}

#[test]
fn project_and_member_lists_page_in_sql_as_they_filtered_and_sorted_in_memory() {
    for srv in TestServer::each() {
        let w = world(&srv);
        let cases = [
            "",
            "order_by=id&sort=asc",
            "order_by=id",
            "order_by=name",
            "order_by=name&sort=asc",
            "order_by=path&sort=asc",
            "order_by=path",
            "order_by=created_at&sort=asc",
            "order_by=last_activity_at",
            "order_by=updated_at&sort=asc",
            "owned=true",
            "membership=true",
            "membership=true&order_by=name&sort=asc",
            "visibility=internal",
            "visibility=private&order_by=path&sort=asc",
            "search=TOOL",
            "search=_x",
            "search=bravo%2Fp1",
            "min_access_level=10",
            "min_access_level=30&order_by=name",
            "min_access_level=50",
            "starred=true",
            "archived=false&simple=true",
        ];
        let viewers = [
            Some((w.root.0, w.root.1.as_str())),
            Some((w.kilo.0, w.kilo.1.as_str())),
            None,
        ];
        for viewer in viewers {
            for q in cases {
                let conn = &mut srv.conn();
                let all = db::project::list(conn).expect("projects");
                let mut members = Vec::new();
                for p in &all {
                    members.extend(db::member::list(conn, p.id).expect("members"));
                }
                let user = viewer.map(|(id, _)| db::user::find(conn, id).expect("find").expect("the viewer"));
                let want = projects_oracle(&all, &members, user.as_ref(), q);
                walk(&srv, viewer.map(|(_, t)| t), "/projects", q, "id", &want);
            }
        }
        // The team's members, and the owner's own (kilo's) list.
        let bravo_user = db::user::find(&mut srv.conn(), w.bravo).expect("find");
        assert!(bravo_user.is_some_and(|u| u.username == "bravo"));
        let some_ids = {
            let conn = &mut srv.conn();
            let m = db::member::list(conn, w.team).expect("members");
            format!(
                "user_ids={}%2C{}%2C{}%2C{}",
                w.bravo, m[0].user_id, m[3].user_id, w.kilo.0
            )
        };
        let member_cases = [
            "",
            "query=FOX",
            "query=same",
            "query=a_b",
            "query=brav",
            &some_ids,
            "query=o&user_ids=999999",
        ];
        for q in member_cases {
            let conn = &mut srv.conn();
            let users = db::user::list(conn).expect("users");
            let project = db::project::find(conn, w.team).expect("find").expect("the team");
            let members = db::member::list(conn, w.team).expect("members");
            let want = members_oracle(&users, &project, &members, q);
            for path in [
                format!("/projects/{}/members", w.team),
                format!("/projects/{}/members/all", w.team),
            ] {
                walk(&srv, Some(&w.root.1), &path, q, "id", &want);
            }
        }
    }
}

/// Follows `Link: rel="next"` from `first` to the end; the ids in order.
pub(crate) fn keyset_walk(srv: &TestServer, token: Option<&str>, first: &str) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut url = format!("/api/v4{first}");
    for _ in 0..100 {
        let r = srv.api("GET", url.strip_prefix("/api/v4").unwrap_or(&url), token, None);
        status(srv, &format!("GET {url}"), &r, 200);
        for h in ["X-Total", "X-Total-Pages", "X-Page", "X-Next-Page"] {
            assert_eq!(r.header(h), None, "[{}] {url}: keyset pages have no {h}", srv.backend());
        }
        seen.extend(r.ids());
        let next = r.header("Link").map(|_| links(srv, &r));
        match next {
            None => return seen,
            Some(l) => {
                assert_eq!(l.keys().collect::<Vec<_>>(), ["next"], "[{}] {url}", srv.backend());
                assert!(
                    !l["next"].contains("private_token"),
                    "[{}] {}",
                    srv.backend(),
                    l["next"]
                );
                let base = srv.url("");
                url = l["next"]
                    .strip_prefix(base.trim_end_matches('/'))
                    .unwrap_or_else(|| panic!("[{}] a next link elsewhere: {}", srv.backend(), l["next"]))
                    .to_string();
            }
        }
    }
    panic!("[{}] {first}: more than 100 keyset pages", srv.backend());
}

#[test]
fn keyset_pagination_by_id_walks_users_and_projects_once_each() {
    for srv in TestServer::each() {
        let w = world(&srv);
        let kilo = db::user::find(&mut srv.conn(), w.kilo.0).expect("find");
        for (viewer, token) in [
            (None, Some(w.root.1.as_str())),
            (kilo.as_ref(), Some(w.kilo.1.as_str())),
            (None, None),
        ] {
            // Projects (anonymous too: the public ones).
            let conn = &mut srv.conn();
            let all = db::project::list(conn).expect("projects");
            let mut members = Vec::new();
            for p in &all {
                members.extend(db::member::list(conn, p.id).expect("members"));
            }
            let root = db::user::find(conn, w.root.0).expect("find");
            let who = if token.is_none() {
                None
            } else {
                viewer.or(root.as_ref())
            };
            for (q, extra) in [
                ("order_by=id&sort=asc", "order_by=id&sort=asc"),
                ("order_by=id&sort=desc", "order_by=id"),
                (
                    "order_by=id&sort=asc&visibility=public",
                    "order_by=id&sort=asc&visibility=public",
                ),
            ] {
                let want = projects_oracle(&all, &members, who, q);
                assert!(want.len() > 4, "the walk crosses pages");
                let got = keyset_walk(&srv, token, &format!("/projects?pagination=keyset&per_page=4&{extra}"));
                assert_eq!(got, want, "[{}] keyset /projects?{extra}", srv.backend());
            }
        }
        // Users, as an admin and as kilo (no blocked users), both ways,
        // with a filter; a list of exactly one page has no next link.
        let all = db::user::list(&mut srv.conn()).expect("users");
        for (admin, token) in [(true, &w.root.1), (false, &w.kilo.1)] {
            for (q, extra) in [
                ("sort=asc", "sort=asc"),
                ("sort=desc", ""),
                ("sort=asc&search=o", "order_by=id&sort=asc&search=o"),
            ] {
                let want = users_oracle(&all, admin, q);
                let got = keyset_walk(
                    &srv,
                    Some(token),
                    &format!("/users?pagination=keyset&per_page=5&{extra}"),
                );
                assert_eq!(got, want, "[{}] keyset /users?{extra}", srv.backend());
            }
        }
        let r = srv.api("GET", "/users?pagination=keyset&username=kilo", Some(&w.root.1), None);
        status(&srv, "one keyset page", &r, 200);
        assert_eq!(
            (r.ids(), r.header("Link")),
            (vec![w.kilo.0], None),
            "[{}]",
            srv.backend()
        );
        // Other orders, and lists without keyset pagination: GitLab's 405.
        let unavailable = json!({"error": "Keyset pagination is not yet available for this type of request"});
        for path in [
            "/users?pagination=keyset&order_by=name".to_string(),
            "/users?pagination=keyset&order_by=created_at&sort=asc".into(),
            "/projects?pagination=keyset".into(),
            "/projects?pagination=keyset&order_by=name".into(),
            "/personal_access_tokens?pagination=keyset".into(),
            format!("/projects/{}/members?pagination=keyset", w.team),
            format!("/users/{}/impersonation_tokens?pagination=keyset", w.kilo.0),
        ] {
            let r = srv.api("GET", &path, Some(&w.root.1), None);
            expect(&srv, &format!("GET {path}"), &r, 405, &unavailable);
        }
    }
}

#[test]
fn totals_are_left_out_past_ten_thousand_rows() {
    for srv in TestServer::each() {
        let root = srv.user("root", true, None);
        let rt = srv.token("root", &["api"], None);
        warm(&srv, &[&rt]);
        // 9,999 more users by SQL: 10,000 in all, counted.
        let seed = |from: i64, to: i64| {
            sql(
                &srv,
                &format!(
                    "INSERT INTO users (username, email, name, is_admin, state, two_factor_enabled, created_at) \
                     WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to}) \
                     SELECT 'seed' || i, 'seed' || i || '@example.com', 'Seed ' || i, FALSE, 'active', FALSE, \
                     '2030-01-01 00:00:00' FROM n"
                ),
            )
        };
        seed(1, 9_999);
        let r = srv.api("GET", "/users?per_page=20&page=2", Some(&rt), None);
        assert_pages(&srv, "10,000 users", &r, ("/api/v4/users", ""), 10_000, 2, 20);
        seed(10_000, 10_000);
        for (page, next, rows) in [(1, "2", 20), (2, "3", 20), (501, "", 1), (502, "", 0)] {
            let what = format!("10,001 users, page {page}");
            let r = srv.api("GET", &format!("/users?per_page=20&page={page}"), Some(&rt), None);
            status(&srv, &what, &r, 200);
            assert_eq!(r.list().len(), rows, "[{}] {what}", srv.backend());
            assert_eq!(r.header("X-Total"), None, "[{}] {what}", srv.backend());
            assert_eq!(r.header("X-Total-Pages"), None, "[{}] {what}", srv.backend());
            assert_eq!(
                r.header("X-Page"),
                Some(page.to_string().as_str()),
                "[{}] {what}",
                srv.backend()
            );
            assert_eq!(r.header("X-Per-Page"), Some("20"), "[{}] {what}", srv.backend());
            assert_eq!(r.header("X-Next-Page"), Some(next), "[{}] {what}", srv.backend());
            assert_eq!(
                r.header("X-Prev-Page"),
                Some(
                    if page > 1 {
                        (page - 1).to_string()
                    } else {
                        String::new()
                    }
                    .as_str()
                ),
                "[{}] {what}",
                srv.backend()
            );
            let l = links(&srv, &r);
            assert!(
                !l.contains_key("last"),
                "[{}] {what}: no last link: {l:?}",
                srv.backend()
            );
            assert_eq!(
                l["first"],
                srv.url("/api/v4/users?page=1&per_page=20"),
                "[{}]",
                srv.backend()
            );
            assert_eq!(
                l.contains_key("next"),
                !next.is_empty(),
                "[{}] {what}: {l:?}",
                srv.backend()
            );
        }
        // A filter that finds fewer is counted again.
        let r = srv.api("GET", "/users?search=seed999&per_page=5", Some(&rt), None);
        assert_pages(
            &srv,
            "search=seed999",
            &r,
            ("/api/v4/users", "search=seed999&"),
            11,
            1,
            5,
        );
        let r = srv.api("GET", "/users?order_by=id&sort=asc&per_page=1", Some(&rt), None);
        assert_eq!(r.ids(), [root.id], "[{}]", srv.backend());
    }
}
