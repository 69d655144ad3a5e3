//! The fixture repositories: reproducible with either git, and importable.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use gitpat::git::store::RepoStore;
use gitpat::service::repos;

use crate::support::backends;

/// The git binaries on this machine (Debian's 2.39 and the newer one).
pub fn git_binaries() -> Vec<PathBuf> {
    ["/usr/bin/git", "/usr/local/bin/git"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}

/// Builds the fixtures into `out`, with `git` first on PATH.
pub fn make_fixtures(out: &Path, git: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("repos-fixture/make-fixtures.sh");
    let path = format!(
        "{}:{}",
        git.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new("bash")
        .arg(script)
        .arg(out)
        .env("PATH", path)
        .output()
        .expect("run make-fixtures.sh");
    assert!(
        status.status.success(),
        "make-fixtures.sh failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn refs(repo: &Path) -> Vec<(String, String)> {
    let r = git2::Repository::open(repo).unwrap();
    let mut v: Vec<(String, String)> = r
        .references()
        .unwrap()
        .map(|x| x.unwrap())
        .filter(|x| x.kind() == Some(git2::ReferenceType::Direct))
        .map(|x| (x.name().unwrap().to_string(), x.target().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn fixtures_have_the_same_object_ids_with_every_git() {
    let gits = git_binaries();
    assert!(!gits.is_empty(), "no git binary found");
    let mut seen = Vec::new();
    for git in &gits {
        let dir = tempfile::tempdir().unwrap();
        make_fixtures(dir.path(), git);
        let basic = refs(&dir.path().join("basic"));
        let names: Vec<&str> = basic.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "refs/heads/feature",
                "refs/heads/main",
                "refs/heads/topic",
                "refs/tags/v0.1",
                "refs/tags/v1.0"
            ]
        );
        let repo = git2::Repository::open(dir.path().join("basic")).unwrap();
        let v1 = repo
            .find_reference("refs/tags/v1.0")
            .unwrap()
            .peel(git2::ObjectType::Tag);
        assert!(v1.is_ok(), "v1.0 must be an annotated tag");
        let main = repo
            .find_reference("refs/heads/main")
            .unwrap()
            .peel_to_commit()
            .unwrap();
        assert_eq!(main.parent_count(), 2, "main ends with a merge");
        let tree = main.tree().unwrap();
        let bin = tree
            .get_name("blob.bin")
            .unwrap()
            .to_object(&repo)
            .unwrap()
            .peel_to_blob()
            .unwrap();
        assert!(bin.is_binary());
        assert!(refs(&dir.path().join("empty")).is_empty());
        assert_eq!(refs(&dir.path().join("many-refs")).len(), 1601);
        seen.push((git.clone(), basic, refs(&dir.path().join("many-refs"))));
    }
    // Pinned: the fixtures must not drift between machines or git versions.
    let main = &seen[0].1.iter().find(|(n, _)| n == "refs/heads/main").unwrap().1;
    assert_eq!(main, "5fa2e434c6aefedc8d01125a22199c04c2234e67");
    for (git, basic, many) in &seen[1..] {
        assert_eq!(basic, &seen[0].1, "{} made other object ids", git.display());
        assert_eq!(many, &seen[0].2, "{} made other object ids", git.display());
    }
}

#[test]
fn fixtures_import_into_gitpat_with_every_ref() {
    let fx = tempfile::tempdir().unwrap();
    make_fixtures(fx.path(), &git_binaries()[0]);
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let req = gitpat::service::users::NewUserRequest {
            username: "alice",
            email: "alice@example.com",
            name: None,
            password: None,
            is_admin: false,
        };
        gitpat::service::users::create(conn, &gitpat::service::audit::Actor::cli(), &req, Utc::now()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = RepoStore::new(dir.path().join("repositories"));
        for name in ["basic", "empty", "many-refs"] {
            let path = format!("alice/{name}");
            let src = fx.path().join(name);
            let req = repos::NewRepoRequest {
                path: &path,
                name: None,
                owner: None,
                visibility: None,
                default_branch: None,
                description: None,
                import: Some(&src),
            };
            let p = repos::create(conn, &store, &req, Utc::now()).unwrap();
            assert_eq!(p.default_branch, "main", "{}: {name}", tdb.backend);
            let dest = store.root().join(format!("{path}.git"));
            assert_eq!(refs(&dest), refs(&src), "{}: {name} imported other refs", tdb.backend);
            let bare = git2::Repository::open_bare(&dest).unwrap();
            assert_eq!(
                bare.find_reference("HEAD").unwrap().symbolic_target(),
                Some("refs/heads/main")
            );
        }
    }
}
