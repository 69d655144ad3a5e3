//! Git LFS is not served: every `info/lfs/...` path answers GitLab's 501
//! for LFS switched off, and the real git-lfs client shows its message.

use gitpat::http::git::LFS_NOT_ENABLED;

use crate::support::repo::{commit, tmp};
use crate::support::server::{gits, TestServer};

#[test]
fn lfs_paths_answer_501_with_gitlabs_message() {
    for srv in TestServer::each() {
        let b = srv.backend();
        for (method, path, body) in [
            (
                "POST",
                "/alice/tools.git/info/lfs/objects/batch",
                &br#"{"operation":"upload","objects":[]}"#[..],
            ),
            ("GET", "/alice/tools.git/info/lfs/objects/0123abcd", &b""[..]),
            ("POST", "/no/such/repo.git/info/lfs/locks/verify", &b"{}"[..]),
            ("PUT", "/alice/tools.git/info/lfs/", &b""[..]),
        ] {
            let r = srv.raw(
                method,
                path,
                &[
                    ("Content-Type", "application/vnd.git-lfs+json"),
                    ("Authorization", "Basic dXNlcjpzZWNyZXQtdG9rZW4="),
                ],
                body,
            );
            assert_eq!(r.status, 501, "[{b}] {method} {path}: {}", r.text());
            assert_eq!(
                r.header("content-type"),
                Some("application/vnd.git-lfs+json"),
                "[{b}] {path}"
            );
            let json: serde_json::Value = serde_json::from_str(&r.text()).expect("a JSON body");
            assert_eq!(json, serde_json::json!({ "message": LFS_NOT_ENABLED }), "[{b}] {path}");
            assert!(
                !r.text().contains("secret-token"),
                "[{b}] the reply echoes the credentials"
            );
        }
    }
}

#[test]
fn git_lfs_shows_the_message_when_a_push_needs_lfs() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["write_repository"], None);
        for (i, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let work = tmp();
            git.ok(work.path(), &["init", "-q", "."]);
            git.ok(work.path(), &["lfs", "install", "--local"]);
            git.ok(work.path(), &["lfs", "track", "*.bin"]);
            std::fs::write(work.path().join("data.bin"), b"large content\n").unwrap();
            git.ok(work.path(), &["add", ".gitattributes", "data.bin"]);
            commit(git, work.path(), "README", "hi\n", "with an LFS object");
            let url = srv.url_as("alice", &t, &format!("/alice/lfs-{i}.git"));
            let err = git.fails(work.path(), &["push", &url, "main"]);
            assert!(
                err.contains(LFS_NOT_ENABLED),
                "{ctx} git-lfs did not show the message:\n{err}"
            );
            assert!(!err.contains(&t), "{ctx} the token was echoed:\n{err}");
        }
    }
}
