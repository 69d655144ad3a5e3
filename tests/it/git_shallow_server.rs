//! A repository that is itself shallow (a `shallow` file in the bare
//! repository, as a `--depth` mirror or an import of a shallow clone
//! leaves it) is served as git serves it: `shallow` lines in the v0
//! advertisement and a `shallow-info` section in v2, so that clones work
//! and match a clone from git itself, on both pack engines.

use std::path::Path;

use crate::support::repo::{commit, fsck, tmp};
use crate::support::server::{gits_speaking, Git, TestServer};

/// What a clone holds: its refs, its shallow file (sorted) and its history.
fn shape(git: &Git, dir: &Path) -> (String, Vec<String>, String) {
    let refs = git.ok(dir, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    let mut shallow: Vec<String> = std::fs::read_to_string(dir.join("shallow"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    shallow.sort();
    let log = git.ok(dir, &["log", "--all", "--format=%H %P"]);
    (refs, shallow, log)
}

#[test]
fn a_shallow_repository_clones_as_from_git_itself() {
    for engine in ["git", "libgit2"] {
        for srv in TestServer::each_with_engine(engine) {
            srv.user("alice", false, None);
            let mut n = 0;
            for protocol in [Some("0"), None] {
                for git in gits_speaking(protocol) {
                    n += 1;
                    let ctx = format!("{} engine {engine}", git.context(srv.backend()));
                    // Five commits on main, two on a side branch; a
                    // shallow bare copy of depth 2.
                    let work = tmp();
                    git.ok(work.path(), &["init", "-q", "."]);
                    for n in 1..=5 {
                        commit(&git, work.path(), "f", &format!("{n}\n"), &format!("c{n}"));
                    }
                    git.ok(work.path(), &["checkout", "-q", "-b", "side", "HEAD~1"]);
                    commit(&git, work.path(), "g", "s1\n", "s1");
                    commit(&git, work.path(), "g", "s2\n", "s2");
                    git.ok(work.path(), &["checkout", "-q", "main"]);
                    let shallow = tmp();
                    let src = format!("file://{}", work.path().display());
                    git.ok(
                        shallow.path(),
                        &[
                            "clone",
                            "-q",
                            "--bare",
                            "--depth",
                            "2",
                            "--no-single-branch",
                            &src,
                            "s.git",
                        ],
                    );
                    let shallow_repo = shallow.path().join("s.git");
                    assert!(shallow_repo.join("shallow").exists(), "{ctx} the source is not shallow");

                    let path = format!("alice/shallow-{n}");
                    srv.repo(&path, "alice", "public");
                    let dir = srv.repo_dir(&path);
                    std::fs::remove_dir_all(&dir).unwrap();
                    let out = std::process::Command::new("cp")
                        .args(["-r"])
                        .arg(&shallow_repo)
                        .arg(&dir)
                        .output()
                        .unwrap();
                    assert!(out.status.success());

                    let oracle = tmp();
                    let file_url = format!("file://{}", shallow_repo.display());
                    git.ok(
                        oracle.path(),
                        &["clone", "-q", "--bare", "--no-local", &file_url, "o.git"],
                    );
                    let ours = tmp();
                    git.ok(
                        ours.path(),
                        &["clone", "-q", "--bare", &srv.url(&format!("/{path}.git")), "g.git"],
                    );
                    assert_eq!(
                        shape(&git, &ours.path().join("g.git")),
                        shape(&git, &oracle.path().join("o.git")),
                        "{ctx}"
                    );
                    fsck(&git, &ours.path().join("g.git"));
                    // Deepening within it: --depth 1, and --depth 5, past
                    // its own boundary.
                    for depth in ["1", "5"] {
                        let o = tmp();
                        git.ok(
                            o.path(),
                            &[
                                "clone",
                                "-q",
                                "--bare",
                                "--no-local",
                                "--depth",
                                depth,
                                "--no-single-branch",
                                &file_url,
                                "o.git",
                            ],
                        );
                        let g = tmp();
                        git.ok(
                            g.path(),
                            &[
                                "clone",
                                "-q",
                                "--bare",
                                "--depth",
                                depth,
                                "--no-single-branch",
                                &srv.url(&format!("/{path}.git")),
                                "g.git",
                            ],
                        );
                        assert_eq!(
                            shape(&git, &g.path().join("g.git")),
                            shape(&git, &o.path().join("o.git")),
                            "{ctx} --depth {depth}"
                        );
                        fsck(&git, &g.path().join("g.git"));
                    }
                }
            }
        }
    }
}
