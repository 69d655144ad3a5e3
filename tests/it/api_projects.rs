//! The REST API (`/api/v4`), projects part, against the contract
//! (`api-contract.md`): creating projects (name/path rules, namespaces,
//! options, refusals; the repository really exists: real git clones and
//! pushes it), the project JSON, listing (who sees what, filters, order,
//! pagination), one project by id or path, updating, deleting, and the
//! members endpoints (and that a member added through the API may push).
//! Every test runs on every backend; messages name it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::api_users::{assert_pages, root, someone, warm};
use crate::support::api::{expect, forbidden, is_iso_ms, status, unauthorized, unchanged, ApiReply};
use crate::support::server::{basic, fixtures, gits, Git, TestServer};

fn not_found() -> Value {
    json!({"message": "404 Project Not Found"})
}

fn member_not_found() -> Value {
    json!({"message": "404 Member Not Found"})
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// `alice%2Fthing` for `alice/thing`.
fn enc(path: &str) -> String {
    path.replace('/', "%2F")
}

/// The branch the bare repository's HEAD names.
fn head_branch(dir: &Path) -> String {
    let r = git2::Repository::open_bare(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let head = r.find_reference("HEAD").expect("HEAD");
    head.symbolic_target()
        .and_then(|t| t.strip_prefix("refs/heads/"))
        .expect("HEAD names a branch")
        .to_string()
}

/// The object id a ref of a bare repository points at.
fn server_ref(dir: &Path, name: &str) -> Option<String> {
    let r = git2::Repository::open_bare(dir).expect("open the server's repository");
    r.refname_to_id(name).ok().map(|o| o.to_string())
}

/// What a project's JSON must say; `None` fields are checked for their
/// type only (the contract gives no value).
struct Want<'a> {
    name: &'a str,
    path: &'a str,
    /// The owner (= the namespace): id, username, display name.
    owner: (i64, &'a str, &'a str),
    visibility: &'a str,
    description: Option<Value>,
    /// `None`: the branch the repository's HEAD names.
    default_branch: Option<&'a str>,
}

/// Asserts the exact project entity: every field of the contract, no
/// other, with the values of `w`; returns the project's id.
#[track_caller]
fn assert_project(srv: &TestServer, what: &str, got: &Value, w: &Want) -> i64 {
    let b = srv.backend();
    let (owner_id, owner_name, owner_display) = w.owner;
    let full = format!("{owner_name}/{}", w.path);
    let id = got["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("[{b}] {what}: no id in {got}"));
    for k in ["created_at", "last_activity_at"] {
        let s = got[k].as_str().unwrap_or_default();
        assert!(is_iso_ms(s), "[{b}] {what}: {k} {:?} is not ISO with ms", got[k]);
    }
    assert!(
        got["name_with_namespace"].is_string(),
        "[{b}] {what}: name_with_namespace is not a string: {got}"
    );
    assert!(
        got["namespace"]["name"].is_string(),
        "[{b}] {what}: namespace.name is not a string: {got}"
    );
    let description = match &w.description {
        Some(d) => d.clone(),
        None => {
            assert!(
                got["description"].is_null() || got["description"].is_string(),
                "[{b}] {what}: description {got}"
            );
            got["description"].clone()
        }
    };
    let default_branch = match w.default_branch {
        Some(d) => d.to_string(),
        None => head_branch(&srv.repo_dir(&full)),
    };
    let want = json!({
        "id": id,
        "name": w.name,
        "path": w.path,
        "path_with_namespace": full,
        "name_with_namespace": got["name_with_namespace"],
        "description": description,
        "visibility": w.visibility,
        "default_branch": default_branch,
        "http_url_to_repo": srv.url(&format!("/{full}.git")),
        "web_url": srv.url(&format!("/{full}")),
        "created_at": got["created_at"],
        "last_activity_at": got["last_activity_at"],
        "namespace": {
            "id": owner_id,
            "name": got["namespace"]["name"],
            "path": owner_name,
            "kind": "user",
            "full_path": owner_name,
        },
        "owner": {"id": owner_id, "username": owner_name, "name": owner_display},
    });
    // Every field of the contract, with its value; whether there are
    // other fields is `project_entity_has_exactly_the_contract_fields`.
    let mut missing = Vec::new();
    let seen = project_onto(got, &want, "", &mut missing);
    assert!(missing.is_empty(), "[{b}] {what}: missing {missing:?} in {got}");
    assert_eq!(seen, want, "[{b}] {what}: the project entity");
    id
}

/// `got` cut down to the keys of `shape` (recursively into objects); the
/// keys `got` lacks are added to `missing`.
fn project_onto(got: &Value, shape: &Value, at: &str, missing: &mut Vec<String>) -> Value {
    match shape.as_object() {
        Some(fields) => {
            let mut out = serde_json::Map::new();
            for (k, sub) in fields {
                match got.get(k) {
                    Some(g) => {
                        out.insert(k.clone(), project_onto(g, sub, &format!("{at}{k}."), missing));
                    }
                    None => missing.push(format!("{at}{k}")),
                }
            }
            Value::Object(out)
        }
        None => got.clone(),
    }
}

/// The keys of an object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

/// The exact member entity of `user` at `level`.
#[track_caller]
fn assert_member(srv: &TestServer, what: &str, got: &Value, (id, username): (i64, &str), level: i64) {
    let b = srv.backend();
    let created = got["created_at"].as_str().unwrap_or_default();
    assert!(is_iso_ms(created), "[{b}] {what}: created_at in {got}");
    let want = json!({
        "id": id,
        "username": username,
        "name": format!("{username} Person"),
        "state": "active",
        "avatar_url": null,
        "web_url": srv.url(&format!("/{username}")),
        "access_level": level,
        "created_at": created,
        "expires_at": null,
    });
    assert_eq!(got, &want, "[{b}] {what}: the member entity");
}

/// `(id, access_level)` of each member of a list reply, sorted by id.
fn levels(r: &ApiReply) -> Vec<(i64, i64)> {
    let mut v: Vec<(i64, i64)> = r
        .list()
        .iter()
        .map(|m| (m["id"].as_i64().unwrap(), m["access_level"].as_i64().unwrap()))
        .collect();
    v.sort();
    v
}

/// Users root (admin), alice, bob, carol (a stranger), dave; tokens with
/// `api`, used once; the projects
/// `alice/{priv,int,pub}`, `bob/{priv,shared,int,pub}` in that order, where
/// alice is a developer of `bob/shared`.
struct World {
    ids: BTreeMap<&'static str, i64>,
    users: BTreeMap<&'static str, i64>,
    tokens: BTreeMap<&'static str, String>,
}

const PROJECTS: [(&str, &str, &str); 7] = [
    ("alice/priv", "alice", "private"),
    ("alice/int", "alice", "internal"),
    ("alice/pub", "alice", "public"),
    ("bob/priv", "bob", "private"),
    ("bob/shared", "bob", "private"),
    ("bob/int", "bob", "internal"),
    ("bob/pub", "bob", "public"),
];

impl World {
    fn new(srv: &TestServer) -> World {
        let mut users = BTreeMap::new();
        let mut tokens = BTreeMap::new();
        let (id, t) = root(srv);
        users.insert("root", id);
        tokens.insert("root", t);
        for n in ["alice", "bob", "carol", "dave"] {
            let (id, t) = someone(srv, n);
            users.insert(n, id);
            tokens.insert(n, t);
        }
        let mut ids = BTreeMap::new();
        for (path, owner, vis) in PROJECTS {
            ids.insert(path, srv.repo(path, owner, vis).id);
        }
        srv.member("bob/shared", "alice", "developer");
        World { ids, users, tokens }
    }

    fn tok(&self, who: &str) -> Option<&str> {
        if who == "anonymous" {
            None
        } else {
            Some(self.tokens[who].as_str())
        }
    }

    /// The ids of `paths`, newest first.
    fn desc(&self, paths: &[&str]) -> Vec<i64> {
        let mut v: Vec<i64> = paths.iter().map(|p| self.ids[p]).collect();
        v.sort();
        v.reverse();
        v
    }
}

/// A developer `dev` and a maintainer `maint` of `alice/p` (private,
/// owned by alice), a stranger `carol`, an admin; all with `api` tokens.
struct Team {
    id: i64,
    users: BTreeMap<&'static str, i64>,
    tokens: BTreeMap<&'static str, String>,
}

fn team(srv: &TestServer, import: bool) -> Team {
    let mut users = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    let (id, t) = root(srv);
    users.insert("root", id);
    tokens.insert("root", t);
    for n in ["alice", "dev", "maint", "carol", "erin"] {
        let (id, t) = someone(srv, n);
        users.insert(n, id);
        tokens.insert(n, t);
    }
    let p = if import {
        srv.import("alice/p", "alice", "private", &fixtures().join("basic"))
    } else {
        srv.repo("alice/p", "alice", "private")
    };
    srv.member("alice/p", "dev", "developer");
    srv.member("alice/p", "maint", "maintainer");
    Team {
        id: p.id,
        users,
        tokens,
    }
}

// ---------------------------------------------------------------------
// POST /projects

#[test]
fn create_project_with_a_name_only_derives_the_path() {
    for srv in TestServer::each() {
        let (alice_id, at) = someone(&srv, "alice");
        for (name, path) in [
            ("My Project!", "my-project"),
            ("Hello World.v2_x", "hello-world.v2_x"),
            ("--Spaced   Out!!", "spaced-out"),
            (".Dots.", "dots"),
        ] {
            let r = srv.api("POST", "/projects", Some(&at), Some(&json!({"name": name})));
            let what = format!("POST /projects name={name:?}");
            status(&srv, &what, &r, 201);
            let want = Want {
                name,
                path,
                owner: (alice_id, "alice", "alice Person"),
                visibility: "private",
                description: None,
                default_branch: None,
            };
            let id = assert_project(&srv, &what, &r.json, &want);
            let row = srv
                .project(&format!("alice/{path}"))
                .unwrap_or_else(|| panic!("[{}] {what}: no row", srv.backend()));
            assert_eq!((row.id, row.name.as_str()), (id, name), "[{}] {what}", srv.backend());
            assert!(
                srv.repo_dir(&format!("alice/{path}")).join("HEAD").is_file(),
                "[{}] {what}: no repository on disk",
                srv.backend()
            );
        }
    }
}

#[test]
fn create_project_with_a_path_only_takes_the_path_as_name() {
    for srv in TestServer::each() {
        let (alice_id, at) = someone(&srv, "alice");
        let r = srv.api_form("POST", "/projects", Some(&at), "path=only-path");
        status(&srv, "POST /projects path only", &r, 201);
        let want = Want {
            name: "only-path",
            path: "only-path",
            owner: (alice_id, "alice", "alice Person"),
            visibility: "private",
            description: None,
            default_branch: None,
        };
        assert_project(&srv, "POST /projects path only", &r.json, &want);
        assert!(
            srv.repo_dir("alice/only-path").join("HEAD").is_file(),
            "[{}]",
            srv.backend()
        );
    }
}

#[test]
fn create_project_with_name_and_path_keeps_both() {
    for srv in TestServer::each() {
        let (alice_id, at) = someone(&srv, "alice");
        let r = srv.api(
            "POST",
            "/projects",
            Some(&at),
            Some(&json!({"name": "Nice Name", "path": "nice-path"})),
        );
        status(&srv, "POST /projects name + path", &r, 201);
        let want = Want {
            name: "Nice Name",
            path: "nice-path",
            owner: (alice_id, "alice", "alice Person"),
            visibility: "private",
            description: None,
            default_branch: None,
        };
        assert_project(&srv, "POST /projects name + path", &r.json, &want);
        assert!(srv.project("alice/nice-path").is_some(), "[{}]", srv.backend());
        assert!(srv.project("alice/nice-name").is_none(), "[{}]", srv.backend());
    }
}

#[test]
fn create_project_with_visibility_description_and_default_branch() {
    for srv in TestServer::each() {
        let (alice_id, at) = someone(&srv, "alice");
        let body = json!({"name": "Full", "visibility": "public", "description": "A described project", "default_branch": "develop"});
        let r = srv.api("POST", "/projects", Some(&at), Some(&body));
        status(&srv, "POST /projects with options", &r, 201);
        let want = Want {
            name: "Full",
            path: "full",
            owner: (alice_id, "alice", "alice Person"),
            visibility: "public",
            description: Some(json!("A described project")),
            default_branch: Some("develop"),
        };
        assert_project(&srv, "POST /projects with options", &r.json, &want);
        assert_eq!(
            head_branch(&srv.repo_dir("alice/full")),
            "develop",
            "[{}] the repository's HEAD",
            srv.backend()
        );
        let row = srv.project("alice/full").unwrap();
        assert_eq!(
            (row.visibility.as_str(), row.description.as_deref()),
            ("public", Some("A described project")),
            "[{}]",
            srv.backend()
        );
        // Internal, as a form.
        let r = srv.api_form("POST", "/projects", Some(&at), "path=inner&visibility=internal");
        status(&srv, "POST /projects internal", &r, 201);
        assert_eq!(r.str("visibility"), "internal", "[{}]", srv.backend());
    }
}

#[test]
fn create_project_refuses_an_invalid_visibility() {
    for srv in TestServer::each() {
        let (_, at) = someone(&srv, "alice");
        let before = srv.snapshot();
        let r = srv.api(
            "POST",
            "/projects",
            Some(&at),
            Some(&json!({"name": "x", "visibility": "secret"})),
        );
        expect(
            &srv,
            "visibility=secret",
            &r,
            400,
            json!({"error": "visibility does not have a valid value"}),
        );
        unchanged(&srv, &before, "visibility=secret");
        assert!(!srv.repo_dir("alice/x").exists(), "[{}]", srv.backend());
    }
}

#[test]
fn create_project_in_another_users_namespace_as_admin() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let bob = srv.user("bob", false, None);
        let r = srv.api(
            "POST",
            "/projects",
            Some(&rt),
            Some(&json!({"name": "For Bob", "namespace_id": bob.id})),
        );
        status(&srv, "POST /projects namespace_id=bob as admin", &r, 201);
        let want = Want {
            name: "For Bob",
            path: "for-bob",
            owner: (bob.id, "bob", "bob Person"),
            visibility: "private",
            description: None,
            default_branch: None,
        };
        assert_project(&srv, "POST /projects in bob's namespace", &r.json, &want);
        let row = srv.project("bob/for-bob").expect("the row");
        assert_eq!(row.owner_id, bob.id, "[{}]", srv.backend());
        assert!(
            srv.repo_dir("bob/for-bob").join("HEAD").is_file(),
            "[{}]",
            srv.backend()
        );
        // The form body's namespace_id is a number too.
        let r = srv.api_form(
            "POST",
            "/projects",
            Some(&rt),
            &format!("path=second&namespace_id={}", bob.id),
        );
        status(&srv, "POST /projects namespace_id (form)", &r, 201);
        assert_eq!(r.str("path_with_namespace"), "bob/second", "[{}]", srv.backend());
    }
}

#[test]
fn create_project_in_own_namespace_by_id() {
    for srv in TestServer::each() {
        let (alice_id, at) = someone(&srv, "alice");
        let r = srv.api(
            "POST",
            "/projects",
            Some(&at),
            Some(&json!({"path": "mine", "namespace_id": alice_id})),
        );
        status(&srv, "POST /projects own namespace_id", &r, 201);
        assert_eq!(r.str("path_with_namespace"), "alice/mine", "[{}]", srv.backend());
    }
}

#[test]
fn create_project_in_another_namespace_as_non_admin_is_403() {
    for srv in TestServer::each() {
        let (_, at) = someone(&srv, "alice");
        let bob = srv.user("bob", false, None);
        let before = srv.snapshot();
        let r = srv.api(
            "POST",
            "/projects",
            Some(&at),
            Some(&json!({"path": "sneaky", "namespace_id": bob.id})),
        );
        expect(&srv, "namespace_id=bob as alice", &r, 403, forbidden());
        unchanged(&srv, &before, "namespace_id=bob as alice");
        assert!(!srv.repo_dir("bob/sneaky").exists(), "[{}]", srv.backend());
        assert!(!srv.repo_dir("alice/sneaky").exists(), "[{}]", srv.backend());
    }
}

#[test]
fn create_project_in_an_unknown_namespace_is_404() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let (_, at) = someone(&srv, "alice");
        let before = srv.snapshot();
        for (who, t) in [("root", &rt), ("alice", &at)] {
            let r = srv.api(
                "POST",
                "/projects",
                Some(t),
                Some(&json!({"path": "lost", "namespace_id": 999999})),
            );
            expect(
                &srv,
                &format!("namespace_id=999999 as {who}"),
                &r,
                404,
                json!({"message": "404 Namespace Not Found"}),
            );
        }
        unchanged(&srv, &before, "unknown namespace");
    }
}

#[test]
fn create_project_without_name_or_path_is_400() {
    for srv in TestServer::each() {
        let (_, at) = someone(&srv, "alice");
        let before = srv.snapshot();
        let err = json!({"error": "name, path are missing, at least one parameter must be provided"});
        let r = srv.api("POST", "/projects", Some(&at), Some(&json!({"visibility": "public"})));
        expect(&srv, "POST /projects without name or path", &r, 400, err.clone());
        let r = srv.api_form("POST", "/projects", Some(&at), "description=nothing");
        expect(&srv, "POST /projects (form) without name or path", &r, 400, err);
        unchanged(&srv, &before, "POST /projects without name or path");
    }
}

#[test]
fn create_project_with_a_taken_path_is_400_and_writes_nothing() {
    for srv in TestServer::each() {
        let (_, at) = someone(&srv, "alice");
        let r = srv.api("POST", "/projects", Some(&at), Some(&json!({"path": "taken"})));
        status(&srv, "the first project", &r, 201);
        let before = srv.snapshot();
        let taken = json!({"message": {"name": ["has already been taken"], "path": ["has already been taken"]}});
        for body in [
            json!({"path": "taken"}),
            json!({"path": "TAKEN", "name": "Other"}),
            json!({"name": "Taken"}),
        ] {
            let r = srv.api("POST", "/projects", Some(&at), Some(&body));
            expect(&srv, &format!("POST /projects {body}"), &r, 400, taken.clone());
        }
        unchanged(&srv, &before, "a taken path");
    }
}

#[test]
fn create_project_needs_a_token_with_api() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let ro = srv.token("alice", &["read_api"], None);
        warm(&srv, &[&ro]);
        let before = srv.snapshot();
        let r = srv.api("POST", "/projects", None, Some(&json!({"path": "x"})));
        expect(&srv, "anonymous POST /projects", &r, 401, unauthorized());
        let r = srv.api("POST", "/projects", Some(&ro), Some(&json!({"path": "x"})));
        expect(
            &srv,
            "POST /projects with read_api",
            &r,
            403,
            json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api"}),
        );
        unchanged(&srv, &before, "POST /projects refused");
    }
}

#[test]
fn created_project_can_be_cloned_and_pushed_with_real_git() {
    for srv in TestServer::each() {
        let (_, at) = someone(&srv, "alice");
        let gtok = srv.token("alice", &["write_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let r = srv.api(
                "POST",
                "/projects",
                Some(&at),
                Some(&json!({"name": format!("Fresh {gi}")})),
            );
            status(&srv, "POST /projects", &r, 201);
            let full = r.str("path_with_namespace").to_string();
            // Clone with the URL the API gave, credentials added.
            let http = r.str("http_url_to_repo");
            let url = http.replacen("http://", &format!("http://alice:{gtok}@"), 1);
            let work = tmp();
            git.ok(work.path(), &["clone", "-q", &url, "c"]);
            let c = work.path().join("c");
            std::fs::write(c.join("README"), "hello\n").unwrap();
            git.ok(&c, &["add", "README"]);
            git.ok(&c, &["commit", "-q", "-m", "first"]);
            let branch = r.str("default_branch").to_string();
            git.ok(&c, &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")]);
            let mine = git.ok(&c, &["rev-parse", "HEAD"]).trim().to_string();
            assert_eq!(
                server_ref(&srv.repo_dir(&full), &format!("refs/heads/{branch}")),
                Some(mine.clone()),
                "{ctx} the push did not land"
            );
            // And a second clone sees it.
            git.ok(work.path(), &["clone", "-q", &url, "d"]);
            assert_eq!(
                git.ok(&work.path().join("d"), &["rev-parse", "HEAD"]).trim(),
                mine,
                "{ctx}"
            );
        }
    }
}

/// The contract's fields of the project entity, its namespace and owner,
/// are all there (GitLab's entities carry more, and so may ours).
#[test]
fn project_entity_has_the_contract_fields() {
    for srv in TestServer::each() {
        let (_, at) = someone(&srv, "alice");
        let created = srv.api("POST", "/projects", Some(&at), Some(&json!({"path": "shape"})));
        status(&srv, "POST /projects", &created, 201);
        let got = srv.api("GET", "/projects/alice%2Fshape", Some(&at), None);
        let listed = srv.api("GET", "/projects", Some(&at), None);
        let top = [
            "created_at",
            "default_branch",
            "description",
            "http_url_to_repo",
            "id",
            "last_activity_at",
            "name",
            "name_with_namespace",
            "namespace",
            "owner",
            "path",
            "path_with_namespace",
            "visibility",
            "web_url",
        ];
        for (what, p) in [("POST", &created.json), ("GET", &got.json), ("list", &listed.list()[0])] {
            let b = srv.backend();
            let has = |v: &Value, want: &[&str]| want.iter().all(|k| keys(v).iter().any(|x| x == k));
            assert!(has(p, &top), "[{b}] {what}: the project's fields: {p}");
            assert!(
                has(&p["namespace"], &["full_path", "id", "kind", "name", "path"]),
                "[{b}] {what}: the namespace's fields: {}",
                p["namespace"]
            );
            assert!(
                has(&p["owner"], &["id", "name", "username"]),
                "[{b}] {what}: the owner's fields: {}",
                p["owner"]
            );
        }
    }
}

// ---------------------------------------------------------------------
// GET /projects

#[test]
fn list_projects_admin_sees_all_newest_first() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        let r = srv.api("GET", "/projects", w.tok("root"), None);
        status(&srv, "GET /projects as root", &r, 200);
        let all: Vec<&str> = PROJECTS.iter().map(|p| p.0).collect();
        assert_eq!(r.ids(), w.desc(&all), "[{}] root", srv.backend());
    }
}

#[test]
fn list_projects_user_sees_own_member_internal_and_public() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        let cases: [(&str, &[&str]); 3] = [
            (
                "alice",
                &[
                    "alice/priv",
                    "alice/int",
                    "alice/pub",
                    "bob/shared",
                    "bob/int",
                    "bob/pub",
                ],
            ),
            (
                "bob",
                &["alice/int", "alice/pub", "bob/priv", "bob/shared", "bob/int", "bob/pub"],
            ),
            ("carol", &["alice/int", "alice/pub", "bob/int", "bob/pub"]),
        ];
        for (who, want) in cases {
            let r = srv.api("GET", "/projects", w.tok(who), None);
            status(&srv, &format!("GET /projects as {who}"), &r, 200);
            assert_eq!(r.ids(), w.desc(want), "[{}] GET /projects as {who}", srv.backend());
        }
    }
}

#[test]
fn list_projects_anonymous_sees_public_only() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        let r = srv.api("GET", "/projects", None, None);
        status(&srv, "anonymous GET /projects", &r, 200);
        assert_eq!(r.ids(), w.desc(&["alice/pub", "bob/pub"]), "[{}]", srv.backend());
        for p in r.list() {
            assert_eq!(p["visibility"], "public", "[{}] {p}", srv.backend());
        }
    }
}

#[test]
fn list_projects_owned_filter() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        let cases: [(&str, &[&str]); 3] = [
            ("alice", &["alice/priv", "alice/int", "alice/pub"]),
            ("bob", &["bob/priv", "bob/shared", "bob/int", "bob/pub"]),
            ("root", &[]),
        ];
        for (who, want) in cases {
            let r = srv.api("GET", "/projects?owned=true", w.tok(who), None);
            status(&srv, &format!("owned=true as {who}"), &r, 200);
            assert_eq!(r.ids(), w.desc(want), "[{}] owned=true as {who}", srv.backend());
        }
        let r = srv.api("GET", "/projects?owned=false", w.tok("carol"), None);
        assert_eq!(
            r.ids(),
            w.desc(&["alice/int", "alice/pub", "bob/int", "bob/pub"]),
            "[{}] owned=false",
            srv.backend()
        );
        let r = srv.api("GET", "/projects?owned=maybe", w.tok("alice"), None);
        expect(&srv, "owned=maybe", &r, 400, json!({"error": "owned is invalid"}));
    }
}

#[test]
fn list_projects_membership_filter() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        srv.member("alice/int", "carol", "reporter");
        let cases: [(&str, &[&str]); 4] = [
            ("alice", &["alice/priv", "alice/int", "alice/pub", "bob/shared"]),
            ("carol", &["alice/int"]),
            ("dave", &[]),
            ("root", &[]),
        ];
        for (who, want) in cases {
            let r = srv.api("GET", "/projects?membership=true", w.tok(who), None);
            status(&srv, &format!("membership=true as {who}"), &r, 200);
            assert_eq!(r.ids(), w.desc(want), "[{}] membership=true as {who}", srv.backend());
        }
    }
}

#[test]
fn list_projects_search_filter_matches_name_or_path_case_insensitively() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        // bob/int gets a name that differs from its path.
        let r = srv.api(
            "PUT",
            &format!("/projects/{}", w.ids["bob/int"]),
            w.tok("bob"),
            Some(&json!({"name": "Zebra Stripes"})),
        );
        status(&srv, "rename bob/int", &r, 200);
        let cases: [(&str, &str, &[&str]); 5] = [
            ("alice", "PUB", &["alice/pub", "bob/pub"]),
            ("alice", "shar", &["bob/shared"]),
            ("alice", "zebra", &["bob/int"]),
            ("carol", "STRIPES", &["bob/int"]),
            ("carol", "priv", &[]),
        ];
        for (who, q, want) in cases {
            let r = srv.api("GET", &format!("/projects?search={q}"), w.tok(who), None);
            status(&srv, &format!("search={q} as {who}"), &r, 200);
            assert_eq!(r.ids(), w.desc(want), "[{}] search={q} as {who}", srv.backend());
        }
    }
}

#[test]
fn list_projects_visibility_filter() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        let cases: [(&str, &str, &[&str]); 5] = [
            ("alice", "internal", &["alice/int", "bob/int"]),
            ("alice", "private", &["alice/priv", "bob/shared"]),
            ("alice", "public", &["alice/pub", "bob/pub"]),
            ("root", "private", &["alice/priv", "bob/priv", "bob/shared"]),
            ("anonymous", "public", &["alice/pub", "bob/pub"]),
        ];
        for (who, v, want) in cases {
            let r = srv.api("GET", &format!("/projects?visibility={v}"), w.tok(who), None);
            status(&srv, &format!("visibility={v} as {who}"), &r, 200);
            assert_eq!(r.ids(), w.desc(want), "[{}] visibility={v} as {who}", srv.backend());
        }
        let r = srv.api("GET", "/projects?visibility=secret", w.tok("alice"), None);
        expect(
            &srv,
            "visibility=secret",
            &r,
            400,
            json!({"error": "visibility does not have a valid value"}),
        );
    }
}

#[test]
fn list_projects_paginates_with_headers_and_links() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        let want = w.desc(&[
            "alice/priv",
            "alice/int",
            "alice/pub",
            "bob/shared",
            "bob/int",
            "bob/pub",
        ]);
        let mut seen = Vec::new();
        for page in 1..=2 {
            let path = format!("/projects?membership=false&per_page=4&page={page}");
            let r = srv.api("GET", &path, w.tok("alice"), None);
            status(&srv, &path, &r, 200);
            assert_pages(&srv, &path, &r, ("/api/v4/projects", "membership=false&"), 6, page, 4);
            seen.extend(r.ids());
        }
        assert_eq!(seen, want, "[{}] the pages together", srv.backend());
        let r = srv.api("GET", "/projects?page=3&per_page=4", w.tok("alice"), None);
        expect(&srv, "page 3", &r, 200, json!([]));
        // Anonymous lists paginate too.
        let r = srv.api("GET", "/projects?per_page=1", None, None);
        assert_pages(&srv, "anonymous per_page=1", &r, ("/api/v4/projects", ""), 2, 1, 1);
        assert_eq!(r.ids(), [w.ids["bob/pub"]], "[{}]", srv.backend());
    }
}

#[test]
fn list_projects_shows_full_project_entities() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        let r = srv.api("GET", "/projects?visibility=public", w.tok("root"), None);
        let bob = (w.users["bob"], "bob", "bob Person");
        let alice = (w.users["alice"], "alice", "alice Person");
        let list = r.list();
        assert_eq!(list.len(), 2, "[{}]", srv.backend());
        for (got, (owner, path)) in list.iter().zip([(bob, "pub"), (alice, "pub")]) {
            let want = Want {
                name: path,
                path,
                owner,
                visibility: "public",
                description: None,
                default_branch: None,
            };
            assert_project(&srv, "a listed project", got, &want);
        }
    }
}

// ---------------------------------------------------------------------
// GET /projects/:id

#[test]
fn get_project_by_id_or_encoded_path_any_case() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        let id = w.ids["alice/priv"];
        let by_id = srv.api("GET", &format!("/projects/{id}"), w.tok("alice"), None);
        status(&srv, "GET /projects/:id", &by_id, 200);
        let want = Want {
            name: "priv",
            path: "priv",
            owner: (w.users["alice"], "alice", "alice Person"),
            visibility: "private",
            description: None,
            default_branch: None,
        };
        assert_project(&srv, "GET /projects/:id", &by_id.json, &want);
        for p in ["alice%2Fpriv", "alice%2fpriv", "ALICE%2FPriv", "Alice%2FPRIV"] {
            let r = srv.api("GET", &format!("/projects/{p}"), w.tok("alice"), None);
            expect(&srv, &format!("GET /projects/{p}"), &r, 200, by_id.json.clone());
        }
        // A member and an admin see it too.
        let r = srv.api("GET", &format!("/projects/{}", enc("bob/shared")), w.tok("alice"), None);
        status(&srv, "bob/shared as its member", &r, 200);
        assert_eq!(
            by_id.json["permissions"],
            json!({"project_access": {"access_level": 50, "notification_level": 3}, "group_access": null}),
            "[{}] the owner's permissions",
            srv.backend()
        );
        let r = srv.api("GET", &format!("/projects/{id}"), w.tok("root"), None);
        let mut want = by_id.json.clone();
        want["permissions"] = json!({"project_access": null, "group_access": null});
        expect(&srv, "GET /projects/:id as root (no member)", &r, 200, want);
    }
}

#[test]
fn get_project_is_404_when_missing_or_hidden() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        for (who, p) in [
            ("alice", "999999".to_string()),
            ("alice", enc("alice/nope")),
            ("root", enc("nobody/nothing")),
            ("carol", w.ids["alice/priv"].to_string()),
            ("carol", enc("alice/priv")),
            ("carol", enc("bob/shared")),
            ("dave", w.ids["bob/priv"].to_string()),
        ] {
            let r = srv.api("GET", &format!("/projects/{p}"), w.tok(who), None);
            expect(&srv, &format!("GET /projects/{p} as {who}"), &r, 404, not_found());
        }
        // Internal: any signed-in user.
        let r = srv.api("GET", &format!("/projects/{}", enc("alice/int")), w.tok("carol"), None);
        status(&srv, "alice/int as carol", &r, 200);
    }
}

#[test]
fn get_public_project_anonymously() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        let r = srv.api("GET", &format!("/projects/{}", enc("alice/pub")), None, None);
        status(&srv, "anonymous GET alice/pub", &r, 200);
        let want = Want {
            name: "pub",
            path: "pub",
            owner: (w.users["alice"], "alice", "alice Person"),
            visibility: "public",
            description: None,
            default_branch: None,
        };
        assert_project(&srv, "anonymous GET alice/pub", &r.json, &want);
        let r = srv.api("GET", &format!("/projects/{}", w.ids["bob/pub"]), None, None);
        status(&srv, "anonymous GET bob/pub by id", &r, 200);
        // Not public: the contract allows anonymous callers only on public
        // projects (401 elsewhere) and says 404 when not visible; either,
        // with its exact body, and never the project.
        for p in [
            enc("alice/priv"),
            enc("alice/int"),
            w.ids["bob/priv"].to_string(),
            "999999".to_string(),
        ] {
            let r = srv.api("GET", &format!("/projects/{p}"), None, None);
            assert!(
                (r.status == 404 && r.json == not_found()) || (r.status == 401 && r.json == unauthorized()),
                "[{}] anonymous GET /projects/{p}: {} {}",
                srv.backend(),
                r.status,
                r.json
            );
        }
    }
}

// ---------------------------------------------------------------------
// PUT /projects/:id

#[test]
fn update_project_by_maintainer_owner_or_admin() {
    for srv in TestServer::each() {
        let t = team(&srv, true);
        let path = format!("/projects/{}", t.id);
        let body = json!({"name": "Renamed", "description": "by the maintainer", "default_branch": "feature"});
        let r = srv.api("PUT", &path, Some(&t.tokens["maint"]), Some(&body));
        status(&srv, "PUT as maintainer", &r, 200);
        let want = Want {
            name: "Renamed",
            path: "p",
            owner: (t.users["alice"], "alice", "alice Person"),
            visibility: "private",
            description: Some(json!("by the maintainer")),
            default_branch: Some("feature"),
        };
        assert_project(&srv, "PUT as maintainer", &r.json, &want);
        // Only an owner changes the visibility (GitLab's change_visibility_level).
        let r = srv.api(
            "PUT",
            &path,
            Some(&t.tokens["alice"]),
            Some(&json!({"visibility": "internal"})),
        );
        status(&srv, "PUT visibility as owner", &r, 200);
        let mut seen = r.json.clone();
        seen.as_object_mut().unwrap().remove("permissions");
        let mut g = srv.api("GET", &path, Some(&t.tokens["carol"]), None);
        status(&srv, "GET after PUT (internal now)", &g, 200);
        assert_eq!(
            g.json["permissions"],
            json!({"project_access": null, "group_access": null}),
            "[{}] carol is no member",
            srv.backend()
        );
        g.json.as_object_mut().unwrap().remove("permissions");
        assert_eq!(g.json, seen, "[{}] GET after PUT (internal now)", srv.backend());
        let row = srv.project("alice/p").unwrap();
        assert_eq!(
            (row.name.as_str(), row.visibility.as_str(), row.default_branch.as_str()),
            ("Renamed", "internal", "feature"),
            "[{}]",
            srv.backend()
        );
        // The owner (form body) and an admin.
        let r = srv.api_form("PUT", &path, Some(&t.tokens["alice"]), "description=by+the+owner");
        status(&srv, "PUT as owner", &r, 200);
        assert_eq!(
            (r.str("description"), r.str("name")),
            ("by the owner", "Renamed"),
            "[{}]",
            srv.backend()
        );
        let r = srv.api(
            "PUT",
            &format!("/projects/{}", enc("alice/p")),
            Some(&t.tokens["root"]),
            Some(&json!({"visibility": "private"})),
        );
        status(&srv, "PUT as admin", &r, 200);
        assert_eq!(r.str("visibility"), "private", "[{}]", srv.backend());
    }
}

#[test]
fn update_project_refusals_write_nothing() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        srv.repo("erin/open", "erin", "public");
        let path = format!("/projects/{}", t.id);
        let before = srv.snapshot();
        let r = srv.api("PUT", &path, Some(&t.tokens["dev"]), Some(&json!({"name": "Dev"})));
        expect(&srv, "PUT as developer", &r, 403, forbidden());
        let r = srv.api("PUT", &path, Some(&t.tokens["alice"]), Some(&json!({"topics": ["x"]})));
        expect(
            &srv,
            "PUT with nothing gitpat updates",
            &r,
            400,
            json!({"error": "name, path, description, visibility, default_branch are missing, at least one parameter must be provided"}),
        );
        let r = srv.api(
            "PUT",
            &path,
            Some(&t.tokens["carol"]),
            Some(&json!({"name": "Stranger"})),
        );
        expect(&srv, "PUT as a stranger (private)", &r, 404, not_found());
        let r = srv.api(
            "PUT",
            &format!("/projects/{}", enc("erin/open")),
            Some(&t.tokens["carol"]),
            Some(&json!({"name": "Stranger"})),
        );
        expect(&srv, "PUT as a stranger (public)", &r, 403, forbidden());
        let r = srv.api(
            "PUT",
            &path,
            Some(&t.tokens["maint"]),
            Some(&json!({"visibility": "public"})),
        );
        expect(&srv, "PUT visibility as a maintainer", &r, 403, forbidden());
        // even its current value (GitLab authorizes the attribute's presence)
        let r = srv.api(
            "PUT",
            &path,
            Some(&t.tokens["maint"]),
            Some(&json!({"name": "Same", "visibility": "private"})),
        );
        expect(&srv, "PUT the same visibility as a maintainer", &r, 403, forbidden());
        unchanged(&srv, &before, "refused PUT /projects/:id");
        srv.repo("alice/other", "alice", "private");
        let r = srv.api("PUT", &path, Some(&t.tokens["maint"]), Some(&json!({"name": "other"})));
        expect(
            &srv,
            "PUT the name of another project of the namespace",
            &r,
            400,
            json!({"message": {"name": ["has already been taken"]}}),
        );
        let before = srv.snapshot();
        let r = srv.api(
            "PUT",
            &path,
            Some(&t.tokens["maint"]),
            Some(&json!({"name": "Valid", "visibility": "secret"})),
        );
        expect(
            &srv,
            "PUT visibility=secret",
            &r,
            400,
            json!({"error": "visibility does not have a valid value"}),
        );
        let r = srv.api(
            "PUT",
            "/projects/999999",
            Some(&t.tokens["root"]),
            Some(&json!({"name": "X"})),
        );
        expect(&srv, "PUT a missing project", &r, 404, not_found());
        let r = srv.api("PUT", &path, None, Some(&json!({"name": "Anon"})));
        expect(&srv, "anonymous PUT", &r, 401, unauthorized());
        unchanged(&srv, &before, "refused PUT /projects/:id");
    }
}

// ---------------------------------------------------------------------
// DELETE /projects/:id

#[test]
fn delete_project_removes_row_members_and_folder() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let dir = srv.repo_dir("alice/p");
        assert!(dir.exists());
        let r = srv.api("DELETE", &format!("/projects/{}", t.id), Some(&t.tokens["alice"]), None);
        expect(&srv, "DELETE as owner", &r, 202, json!({"message": "202 Accepted"}));
        assert!(
            srv.project("alice/p").is_none(),
            "[{}] the row is still there",
            srv.backend()
        );
        assert!(!dir.exists(), "[{}] the folder is still there", srv.backend());
        let members = gitpat::db::member::list(&mut srv.conn(), t.id).expect("members");
        assert!(members.is_empty(), "[{}] members left: {members:?}", srv.backend());
        let r = srv.api("GET", &format!("/projects/{}", t.id), Some(&t.tokens["alice"]), None);
        expect(&srv, "GET after DELETE", &r, 404, not_found());
        // An admin deletes someone else's, by path.
        srv.repo("carol/c", "carol", "private");
        let r = srv.api(
            "DELETE",
            &format!("/projects/{}", enc("carol/c")),
            Some(&t.tokens["root"]),
            None,
        );
        expect(&srv, "DELETE as admin", &r, 202, json!({"message": "202 Accepted"}));
        assert!(srv.project("carol/c").is_none(), "[{}]", srv.backend());
        assert!(!srv.repo_dir("carol/c").exists(), "[{}]", srv.backend());
        // The path is free again.
        let r = srv.api(
            "POST",
            "/projects",
            Some(&t.tokens["alice"]),
            Some(&json!({"path": "p"})),
        );
        status(&srv, "re-create alice/p", &r, 201);
    }
}

#[test]
fn delete_project_is_refused_to_maintainers_developers_and_strangers() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let path = format!("/projects/{}", t.id);
        let before = srv.snapshot();
        for who in ["maint", "dev"] {
            let r = srv.api("DELETE", &path, Some(&t.tokens[who]), None);
            expect(&srv, &format!("DELETE as {who}"), &r, 403, forbidden());
        }
        let r = srv.api("DELETE", &path, Some(&t.tokens["carol"]), None);
        expect(&srv, "DELETE as a stranger", &r, 404, not_found());
        let r = srv.api("DELETE", &path, None, None);
        expect(&srv, "anonymous DELETE", &r, 401, unauthorized());
        let r = srv.api("DELETE", "/projects/999999", Some(&t.tokens["root"]), None);
        expect(&srv, "DELETE a missing project", &r, 404, not_found());
        unchanged(&srv, &before, "refused DELETE /projects/:id");
        assert!(srv.repo_dir("alice/p").join("HEAD").is_file(), "[{}]", srv.backend());
    }
}

// ---------------------------------------------------------------------
// Members

#[test]
fn members_list_has_the_owner_at_50_and_the_members() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let r = srv.api(
            "GET",
            &format!("/projects/{}/members", t.id),
            Some(&t.tokens["dev"]),
            None,
        );
        status(&srv, "GET members", &r, 200);
        let mut want = vec![(t.users["alice"], 50), (t.users["dev"], 30), (t.users["maint"], 40)];
        want.sort();
        assert_eq!(levels(&r), want, "[{}] GET members", srv.backend());
        for m in r.list() {
            let id = m["id"].as_i64().unwrap();
            let (name, level) = [("alice", 50), ("dev", 30), ("maint", 40)]
                .into_iter()
                .find(|(n, _)| t.users[n] == id)
                .unwrap();
            assert_member(&srv, "a listed member", m, (id, name), level);
        }
        // By path; a stranger does not see a private project's members.
        let r = srv.api(
            "GET",
            &format!("/projects/{}/members", enc("alice/p")),
            Some(&t.tokens["root"]),
            None,
        );
        assert_eq!(levels(&r), want, "[{}] by path as root", srv.backend());
        let r = srv.api(
            "GET",
            &format!("/projects/{}/members", t.id),
            Some(&t.tokens["carol"]),
            None,
        );
        expect(&srv, "GET members as a stranger", &r, 404, not_found());
    }
}

#[test]
fn add_member_returns_201_and_the_member() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let path = format!("/projects/{}/members", t.id);
        let r = srv.api(
            "POST",
            &path,
            Some(&t.tokens["alice"]),
            Some(&json!({"user_id": t.users["carol"], "access_level": 20})),
        );
        status(&srv, "POST member", &r, 201);
        assert_member(&srv, "POST member", &r.json, (t.users["carol"], "carol"), 20);
        let row = gitpat::db::member::find(&mut srv.conn(), t.id, t.users["carol"])
            .unwrap()
            .expect("the member row");
        assert_eq!(row.access_level, 20, "[{}]", srv.backend());
        // As a form, by a maintainer, up to maintainer.
        let r = srv.api_form(
            "POST",
            &path,
            Some(&t.tokens["maint"]),
            &format!("user_id={}&access_level=40", t.users["erin"]),
        );
        status(&srv, "POST member (form) by a maintainer", &r, 201);
        assert_member(&srv, "POST member (form)", &r.json, (t.users["erin"], "erin"), 40);
        // Now carol sees the private project.
        let g = srv.api("GET", &format!("/projects/{}", t.id), Some(&t.tokens["carol"]), None);
        status(&srv, "GET the project as the new member", &g, 200);
        // By username, as GitLab also takes.
        srv.user("frank", false, None);
        let r = srv.api(
            "POST",
            &path,
            Some(&t.tokens["alice"]),
            Some(&json!({"username": "FRANK", "access_level": 30})),
        );
        status(&srv, "POST member by username", &r, 201);
        assert_eq!(
            (r.str("username"), r.int("access_level")),
            ("frank", 30),
            "[{}]",
            srv.backend()
        );
    }
}

#[test]
fn add_member_refusals_write_nothing() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let path = format!("/projects/{}/members", t.id);
        let carol = t.users["carol"];
        let before = srv.snapshot();
        let add = |who: &str, body: Value| srv.api("POST", &path, Some(&t.tokens[who]), Some(&body));
        let exists = json!({"message": "Member already exists"});
        let r = add("alice", json!({"user_id": t.users["dev"], "access_level": 20}));
        expect(&srv, "POST an existing member", &r, 409, exists.clone());
        let r = add("alice", json!({"user_id": t.users["alice"], "access_level": 40}));
        expect(&srv, "POST the owner", &r, 409, exists);
        let r = add("alice", json!({"user_id": 999999, "access_level": 30}));
        expect(
            &srv,
            "POST an unknown user",
            &r,
            404,
            json!({"message": "404 User Not Found"}),
        );
        for level in [json!(35), json!(0), json!(60)] {
            let r = add("alice", json!({"user_id": carol, "access_level": level}));
            expect(
                &srv,
                &format!("POST access_level={level}"),
                &r,
                400,
                json!({"error": "access_level does not have a valid value"}),
            );
        }
        let r = add("alice", json!({"user_id": "abc", "access_level": 30}));
        expect(
            &srv,
            "POST user_id=abc",
            &r,
            400,
            json!({"error": "user_id is invalid"}),
        );
        let r = add("alice", json!({}));
        expect(
            &srv,
            "POST member {}",
            &r,
            400,
            json!({"error": "access_level is missing, user_id, username are missing, exactly one parameter must be provided"}),
        );
        let r = add("alice", json!({"access_level": 30}));
        expect(
            &srv,
            "POST member without user_id or username",
            &r,
            400,
            json!({"error": "user_id, username are missing, exactly one parameter must be provided"}),
        );
        let r = add(
            "alice",
            json!({"user_id": carol, "username": "carol", "access_level": 30}),
        );
        expect(
            &srv,
            "POST member with user_id and username",
            &r,
            400,
            json!({"error": "user_id, username are mutually exclusive"}),
        );
        let r = add("alice", json!({"username": "nobody-here", "access_level": 30}));
        expect(
            &srv,
            "POST member username=nobody",
            &r,
            404,
            json!({"message": "404 User Not Found"}),
        );
        let r = add("alice", json!({"user_id": carol}));
        expect(
            &srv,
            "POST without access_level",
            &r,
            400,
            json!({"error": "access_level is missing"}),
        );
        let r = add("maint", json!({"user_id": carol, "access_level": 50}));
        expect(&srv, "a maintainer grants 50", &r, 403, forbidden());
        let r = add("dev", json!({"user_id": carol, "access_level": 10}));
        expect(&srv, "a developer adds a member", &r, 403, forbidden());
        let r = add("carol", json!({"user_id": carol, "access_level": 10}));
        expect(&srv, "a stranger adds itself", &r, 404, not_found());
        unchanged(&srv, &before, "refused POST members");
    }
}

#[test]
fn owner_and_admin_may_grant_owner_level() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let path = format!("/projects/{}/members", t.id);
        let r = srv.api(
            "POST",
            &path,
            Some(&t.tokens["alice"]),
            Some(&json!({"user_id": t.users["carol"], "access_level": 50})),
        );
        status(&srv, "the owner grants 50", &r, 201);
        assert_member(&srv, "the owner grants 50", &r.json, (t.users["carol"], "carol"), 50);
        let r = srv.api(
            "POST",
            &path,
            Some(&t.tokens["root"]),
            Some(&json!({"user_id": t.users["erin"], "access_level": 50})),
        );
        status(&srv, "an admin grants 50", &r, 201);
        assert_eq!(r.int("access_level"), 50, "[{}]", srv.backend());
    }
}

#[test]
fn get_member_or_404() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let get = |user: i64, who: &str| {
            srv.api(
                "GET",
                &format!("/projects/{}/members/{user}", t.id),
                Some(&t.tokens[who]),
                None,
            )
        };
        let r = get(t.users["dev"], "maint");
        status(&srv, "GET member dev", &r, 200);
        assert_member(&srv, "GET member dev", &r.json, (t.users["dev"], "dev"), 30);
        // The owner's entry, as listed.
        let r = get(t.users["alice"], "dev");
        status(&srv, "GET the owner's entry", &r, 200);
        assert_member(&srv, "GET the owner's entry", &r.json, (t.users["alice"], "alice"), 50);
        let r = get(t.users["carol"], "alice");
        expect(&srv, "GET a non-member", &r, 404, member_not_found());
        let r = get(999999, "alice");
        expect(&srv, "GET an unknown user", &r, 404, member_not_found());
        let r = get(t.users["dev"], "carol");
        expect(&srv, "GET a member as a stranger", &r, 404, not_found());
    }
}

#[test]
fn update_member_changes_the_level() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let dev = t.users["dev"];
        let path = format!("/projects/{}/members/{dev}", t.id);
        let r = srv.api(
            "PUT",
            &path,
            Some(&t.tokens["alice"]),
            Some(&json!({"access_level": 20})),
        );
        status(&srv, "PUT member", &r, 200);
        assert_member(&srv, "PUT member", &r.json, (dev, "dev"), 20);
        let row = gitpat::db::member::find(&mut srv.conn(), t.id, dev).unwrap().unwrap();
        assert_eq!(row.access_level, 20, "[{}]", srv.backend());
        let r = srv.api_form("PUT", &path, Some(&t.tokens["maint"]), "access_level=30");
        status(&srv, "PUT member (form) by a maintainer", &r, 200);
        assert_eq!(r.int("access_level"), 30, "[{}]", srv.backend());
        let g = srv.api("GET", &path, Some(&t.tokens["dev"]), None);
        assert_member(&srv, "GET after PUT", &g.json, (dev, "dev"), 30);
        // Refusals.
        let before = srv.snapshot();
        let r = srv.api("PUT", &path, Some(&t.tokens["alice"]), Some(&json!({})));
        expect(
            &srv,
            "PUT without access_level",
            &r,
            400,
            json!({"error": "access_level is missing"}),
        );
        let r = srv.api(
            "PUT",
            &path,
            Some(&t.tokens["alice"]),
            Some(&json!({"access_level": 35})),
        );
        expect(
            &srv,
            "PUT access_level=35",
            &r,
            400,
            json!({"error": "access_level does not have a valid value"}),
        );
        let r = srv.api(
            "PUT",
            &format!("/projects/{}/members/{}", t.id, t.users["carol"]),
            Some(&t.tokens["alice"]),
            Some(&json!({"access_level": 30})),
        );
        expect(&srv, "PUT a non-member", &r, 404, member_not_found());
        let r = srv.api("PUT", &path, Some(&t.tokens["dev"]), Some(&json!({"access_level": 40})));
        expect(&srv, "a developer promotes itself", &r, 403, forbidden());
        unchanged(&srv, &before, "refused PUT member");
    }
}

#[test]
fn a_member_may_leave_a_project() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let dev = t.users["dev"];
        let r = srv.api(
            "DELETE",
            &format!("/projects/{}/members/{dev}", t.id),
            Some(&t.tokens["dev"]),
            None,
        );
        status(&srv, "a developer removes themselves", &r, 204);
        assert!(
            gitpat::db::member::find(&mut srv.conn(), t.id, dev).unwrap().is_none(),
            "[{}] the developer is still a member",
            srv.backend()
        );
        let r = srv.api("GET", &format!("/projects/{}", t.id), Some(&t.tokens["dev"]), None);
        expect(&srv, "GET the project after leaving", &r, 404, not_found());
    }
}

#[test]
fn delete_member_then_it_is_gone() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let dev = t.users["dev"];
        let path = format!("/projects/{}/members/{dev}", t.id);
        // Another member, removed by a developer: refused (members are
        // managed by maintainers and up, as for POST).
        srv.member("alice/p", "erin", "reporter");
        let before = srv.snapshot();
        let r = srv.api(
            "DELETE",
            &format!("/projects/{}/members/{}", t.id, t.users["erin"]),
            Some(&t.tokens["dev"]),
            None,
        );
        expect(&srv, "a developer deletes another member", &r, 403, forbidden());
        let r = srv.api("DELETE", &path, Some(&t.tokens["carol"]), None);
        expect(&srv, "a stranger deletes a member", &r, 404, not_found());
        unchanged(&srv, &before, "refused DELETE member");
        let r = srv.api("DELETE", &path, Some(&t.tokens["maint"]), None);
        status(&srv, "DELETE member", &r, 204);
        assert!(
            r.raw.body.is_empty(),
            "[{}] a 204 with a body: {}",
            srv.backend(),
            r.raw.text()
        );
        assert!(
            gitpat::db::member::find(&mut srv.conn(), t.id, dev).unwrap().is_none(),
            "[{}] the row is still there",
            srv.backend()
        );
        let r = srv.api("GET", &path, Some(&t.tokens["alice"]), None);
        expect(&srv, "GET after DELETE", &r, 404, member_not_found());
        let r = srv.api("DELETE", &path, Some(&t.tokens["alice"]), None);
        expect(&srv, "DELETE again", &r, 404, member_not_found());
        // dev no longer sees the private project.
        let r = srv.api("GET", &format!("/projects/{}", t.id), Some(&t.tokens["dev"]), None);
        expect(&srv, "GET the project as the removed member", &r, 404, not_found());
    }
}

#[test]
fn owner_entry_cannot_be_changed_or_removed() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let path = format!("/projects/{}/members/{}", t.id, t.users["alice"]);
        let before = srv.snapshot();
        for who in ["alice", "maint", "root"] {
            let r = srv.api("PUT", &path, Some(&t.tokens[who]), Some(&json!({"access_level": 30})));
            expect(&srv, &format!("PUT the owner's entry as {who}"), &r, 403, forbidden());
            let r = srv.api("DELETE", &path, Some(&t.tokens[who]), None);
            expect(
                &srv,
                &format!("DELETE the owner's entry as {who}"),
                &r,
                403,
                forbidden(),
            );
        }
        unchanged(&srv, &before, "the owner's entry");
    }
}

#[test]
fn member_added_through_the_api_may_push_with_git() {
    for srv in TestServer::each() {
        let t = team(&srv, true);
        srv.user("newdev", false, None);
        let newdev = gitpat::db::user::find_by_username(&mut srv.conn(), "newdev")
            .unwrap()
            .unwrap()
            .id;
        let gtok = srv.token("newdev", &["write_repository"], None);
        let url = srv.url_as("newdev", &gtok, "/alice/p.git");
        let git: &Git = &gits()[0];
        let ctx = git.context(srv.backend());
        let work = tmp();
        // Not a member yet: not even a clone.
        git.fails(work.path(), &["clone", "-q", &url, "before"]);
        let r = srv.api(
            "POST",
            &format!("/projects/{}/members", t.id),
            Some(&t.tokens["alice"]),
            Some(&json!({"user_id": newdev, "access_level": 30})),
        );
        status(&srv, "POST member newdev", &r, 201);
        git.ok(work.path(), &["clone", "-q", &url, "c"]);
        let c = work.path().join("c");
        git.ok(&c, &["checkout", "-q", "-b", "newdev-branch"]);
        std::fs::write(c.join("dev.txt"), "from the new developer\n").unwrap();
        git.ok(&c, &["add", "dev.txt"]);
        git.ok(&c, &["commit", "-q", "-m", "dev"]);
        git.ok(&c, &["push", "-q", "origin", "newdev-branch"]);
        let mine = git.ok(&c, &["rev-parse", "HEAD"]).trim().to_string();
        assert_eq!(
            server_ref(&srv.repo_dir("alice/p"), "refs/heads/newdev-branch"),
            Some(mine),
            "{ctx} the developer's push"
        );
        // Demoted to reporter through the API: may no longer push.
        let r = srv.api(
            "PUT",
            &format!("/projects/{}/members/{newdev}", t.id),
            Some(&t.tokens["alice"]),
            Some(&json!({"access_level": 20})),
        );
        status(&srv, "PUT newdev to reporter", &r, 200);
        std::fs::write(c.join("dev.txt"), "again\n").unwrap();
        git.ok(&c, &["commit", "-q", "-am", "dev again"]);
        git.fails(&c, &["push", "-q", "origin", "newdev-branch"]);
        // Removed: may not even fetch.
        let r = srv.api(
            "DELETE",
            &format!("/projects/{}/members/{newdev}", t.id),
            Some(&t.tokens["alice"]),
            None,
        );
        status(&srv, "DELETE newdev", &r, 204);
        git.fails(&c, &["fetch", "-q", "origin"]);
    }
}

#[test]
fn create_project_refuses_a_nested_or_dot_git_path_and_a_taken_name() {
    for srv in TestServer::each() {
        let (_, at) = someone(&srv, "alice");
        let r = srv.api(
            "POST",
            "/projects",
            Some(&at),
            Some(&json!({"name": "Alpha", "path": "alpha"})),
        );
        status(&srv, "the first project", &r, 201);
        let before = srv.snapshot();
        for path in ["a/b", "a/b/c/d", "x.git", "x.GIT", "feed.atom"] {
            let r = srv.api("POST", "/projects", Some(&at), Some(&json!({"path": path})));
            status(&srv, &format!("POST /projects path={path}"), &r, 400);
            assert!(
                r.json["message"]["path"].is_array(),
                "[{}] path={path}: a field error on path: {}",
                srv.backend(),
                r.json
            );
        }
        // The same name under another path: GitLab keeps names unique per namespace.
        let r = srv.api(
            "POST",
            "/projects",
            Some(&at),
            Some(&json!({"name": "Alpha", "path": "beta"})),
        );
        expect(
            &srv,
            "POST /projects with a taken name",
            &r,
            400,
            json!({"message": {"name": ["has already been taken"]}}),
        );
        unchanged(&srv, &before, "refused POST /projects");
        assert!(
            !srv.repo_dir("alice/a").exists() && !srv.repo_dir("alice/x").exists(),
            "[{}] a refused create left a folder",
            srv.backend()
        );
        // Another namespace may use the name.
        let (_, bt) = someone(&srv, "bob");
        let r = srv.api("POST", "/projects", Some(&bt), Some(&json!({"name": "Alpha"})));
        status(&srv, "bob's Alpha", &r, 201);
    }
}

#[test]
fn list_projects_orders_and_filters_by_access_level_as_gitlab() {
    for srv in TestServer::each() {
        let w = World::new(&srv);
        srv.member("bob/int", "alice", "maintainer");
        let ids = |r: &ApiReply| r.ids();
        let alice = w.tok("alice");
        // min_access_level: alice owns hers, maintains bob/int, develops bob/shared.
        let r = srv.api("GET", "/projects?min_access_level=40", alice, None);
        status(&srv, "min_access_level=40", &r, 200);
        assert_eq!(
            ids(&r),
            w.desc(&["alice/priv", "alice/int", "alice/pub", "bob/int"]),
            "[{}] min_access_level=40",
            srv.backend()
        );
        let r = srv.api("GET", "/projects?min_access_level=30", alice, None);
        assert_eq!(
            ids(&r),
            w.desc(&["alice/priv", "alice/int", "alice/pub", "bob/shared", "bob/int"]),
            "[{}] min_access_level=30",
            srv.backend()
        );
        let r = srv.api("GET", "/projects?min_access_level=50&owned=false", alice, None);
        assert_eq!(
            ids(&r),
            w.desc(&["alice/priv", "alice/int", "alice/pub"]),
            "[{}] min_access_level=50",
            srv.backend()
        );
        // order_by and sort
        let r = srv.api("GET", "/projects?order_by=id&sort=asc", w.tok("root"), None);
        let mut all = w.desc(&PROJECTS.map(|p| p.0));
        all.reverse();
        assert_eq!(ids(&r), all, "[{}] order_by=id&sort=asc", srv.backend());
        let r = srv.api("GET", "/projects?order_by=path&sort=asc&owned=true", alice, None);
        let paths: Vec<&str> = r
            .list()
            .iter()
            .map(|p| p["path_with_namespace"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            ["alice/int", "alice/priv", "alice/pub"],
            "[{}] order_by=path",
            srv.backend()
        );
        // no stars, no archived projects; simple is accepted
        for q in ["starred=true", "archived=true"] {
            let r = srv.api("GET", &format!("/projects?{q}"), alice, None);
            expect(&srv, &format!("GET /projects?{q}"), &r, 200, json!([]));
        }
        let r = srv.api("GET", "/projects?archived=false&simple=true&owned=true", alice, None);
        assert_eq!(
            ids(&r),
            w.desc(&["alice/priv", "alice/int", "alice/pub"]),
            "[{}] archived=false",
            srv.backend()
        );
        for (q, bad) in [
            ("order_by=stars", "order_by"),
            ("sort=sideways", "sort"),
            ("min_access_level=35", "min_access_level"),
        ] {
            let r = srv.api("GET", &format!("/projects?{q}"), alice, None);
            expect(
                &srv,
                &format!("GET /projects?{q}"),
                &r,
                400,
                json!({"error": format!("{bad} does not have a valid value")}),
            );
        }
    }
}

#[test]
fn members_need_a_token_and_filter_by_query_and_user_ids_and_members_all_is_the_same() {
    for srv in TestServer::each() {
        let t = team(&srv, false);
        let path = format!("/projects/{}/members", t.id);
        srv.repo("erin/open", "erin", "public");
        let r = srv.api("GET", &format!("/projects/{}/members", enc("erin/open")), None, None);
        expect(
            &srv,
            "anonymous GET members of a public project",
            &r,
            401,
            unauthorized(),
        );
        let alice = Some(t.tokens["alice"].as_str());
        let r = srv.api("GET", &path, alice, None);
        status(&srv, "GET members", &r, 200);
        let all = r.json.clone();
        let r = srv.api("GET", &format!("{path}/all"), alice, None);
        expect(&srv, "GET members/all", &r, 200, all);
        let r = srv.api("GET", &format!("{path}/all/{}", t.users["dev"]), alice, None);
        status(&srv, "GET members/all/:user_id", &r, 200);
        assert_eq!(r.json["access_level"], json!(30), "[{}] {}", srv.backend(), r.json);
        let r = srv.api("GET", &format!("{path}?query=MAI"), alice, None);
        assert_eq!(r.ids(), [t.users["maint"]], "[{}] query=MAI", srv.backend());
        let q = format!("{path}?user_ids[]={}&user_ids[]={}", t.users["alice"], t.users["dev"]);
        let r = srv.api("GET", &q, alice, None);
        assert_eq!(
            r.ids(),
            [t.users["alice"], t.users["dev"]],
            "[{}] user_ids",
            srv.backend()
        );
        let r = srv.api("GET", &format!("{path}?user_ids=x"), alice, None);
        expect(&srv, "user_ids=x", &r, 400, json!({"error": "user_ids is invalid"}));
    }
}

#[test]
fn project_entity_has_the_fields_clients_read_of_what_gitpat_lacks() {
    for srv in TestServer::each() {
        let (_, at) = someone(&srv, "alice");
        let r = srv.api("POST", "/projects", Some(&at), Some(&json!({"name": "tools"})));
        status(&srv, "POST /projects", &r, 201);
        for (k, v) in [
            ("archived", json!(false)),
            ("topics", json!([])),
            ("tag_list", json!([])),
            ("star_count", json!(0)),
            ("forks_count", json!(0)),
        ] {
            assert_eq!(r.json[k], v, "[{}] {k}: {}", srv.backend(), r.json);
        }
        let r = srv.api("GET", "/user", Some(&at), None);
        assert_eq!(
            r.json["namespace_id"],
            r.json["id"],
            "[{}] the user's namespace_id",
            srv.backend()
        );
    }
}

#[test]
fn member_expires_at_is_kept_and_an_expired_membership_gives_no_access() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let t = team(&srv, false);
        let path = format!("/projects/{}/members", t.id);
        let alice = Some(t.tokens["alice"].as_str());
        let today = chrono::Utc::now().date_naive();
        let later = (today + chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
        let carol = t.users["carol"];
        let before = srv.snapshot();
        let yesterday = (today - chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
        let r = srv.api(
            "POST",
            &path,
            alice,
            Some(&json!({"user_id": carol, "access_level": 30, "expires_at": yesterday})),
        );
        expect(
            &srv,
            "POST a member expiring yesterday",
            &r,
            400,
            json!({"message": {"expires_at": ["cannot be a date in the past"]}}),
        );
        let r = srv.api(
            "POST",
            &path,
            alice,
            Some(&json!({"user_id": carol, "access_level": 30, "expires_at": "soon"})),
        );
        expect(
            &srv,
            "expires_at=soon",
            &r,
            400,
            json!({"error": "expires_at is invalid"}),
        );
        unchanged(&srv, &before, "refused members with expiry");

        let r = srv.api(
            "POST",
            &path,
            alice,
            Some(&json!({"user_id": carol, "access_level": 30, "expires_at": later})),
        );
        status(&srv, "POST a member with expires_at", &r, 201);
        assert_eq!(r.json["expires_at"], json!(later), "[{b}] {}", r.json);
        let r = srv.api("GET", &format!("{path}/{carol}"), alice, None);
        assert_eq!(r.json["expires_at"], json!(later), "[{b}] GET member: {}", r.json);
        let project = format!("/projects/{}", t.id);
        let ct = Some(t.tokens["carol"].as_str());
        status(&srv, "carol sees it", &srv.api("GET", &project, ct, None), 200);

        // Expiring today: no access from 00:00 UTC of that date.
        gitpat::db::member::set_expiry(&mut srv.conn(), t.id, carol, Some(today)).unwrap();
        expect(
            &srv,
            "an expired member",
            &srv.api("GET", &project, ct, None),
            404,
            not_found(),
        );
        let r = srv.api("GET", "/projects?membership=true", ct, None);
        expect(&srv, "an expired member's projects", &r, 200, json!([]));
        let auth = basic("carol", &t.tokens["carol"]);
        let refs = "/alice/p.git/info/refs?service=git-upload-pack";
        let r = srv.raw("GET", refs, &[("Authorization", auth.as_str())], b"");
        assert_eq!(r.status, 404, "[{b}] an expired member fetches over Git: {}", r.text());

        // PUT renews it (and null clears it); a past date is refused.
        let r = srv.api(
            "PUT",
            &format!("{path}/{carol}"),
            alice,
            Some(&json!({"access_level": 30, "expires_at": yesterday})),
        );
        status(&srv, "PUT a past expiry", &r, 400);
        let r = srv.api(
            "PUT",
            &format!("{path}/{carol}"),
            alice,
            Some(&json!({"access_level": 20, "expires_at": later})),
        );
        status(&srv, "PUT a new expiry", &r, 200);
        assert_eq!(
            (r.json["expires_at"].clone(), r.int("access_level")),
            (json!(later), 20),
            "[{b}]"
        );
        status(&srv, "carol sees it again", &srv.api("GET", &project, ct, None), 200);
        let r = srv.raw("GET", refs, &[("Authorization", auth.as_str())], b"");
        assert_eq!(r.status, 200, "[{b}] a renewed member fetches over Git: {}", r.text());
        let r = srv.api(
            "PUT",
            &format!("{path}/{carol}"),
            alice,
            Some(&json!({"access_level": 20, "expires_at": null})),
        );
        assert_eq!(r.json["expires_at"], Value::Null, "[{b}] cleared: {}", r.json);
        let r = srv.api(
            "PUT",
            &format!("{path}/{carol}"),
            alice,
            Some(&json!({"access_level": 30})),
        );
        assert_eq!(
            r.json["expires_at"],
            Value::Null,
            "[{b}] kept when not given: {}",
            r.json
        );
        let row = gitpat::db::member::find(&mut srv.conn(), t.id, carol).unwrap().unwrap();
        assert_eq!((row.access_level, row.expires_at), (30, None), "[{b}] the stored row");
    }
}
