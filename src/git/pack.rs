//! Pack engines. `git pack-objects` is the default (delta reuse, bitmaps,
//! thin packs, filters, streaming from the first object: see the spec's
//! measurements); libgit2's PackBuilder is the fallback for machines without
//! git. It recomputes deltas, cannot make thin packs or apply filters, and
//! emits nothing until every delta is done.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

use crate::git::upload_pack::PackSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackEngine {
    /// `git pack-objects`, run as this binary.
    Git { binary: PathBuf },
    /// libgit2's PackBuilder, in process.
    Libgit2,
}

/// A `pack_engine` setting that cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("pack_engine is git, but no git binary is on PATH: install git or set pack_engine = libgit2")]
    NoGit,
    #[error("unknown pack_engine {0:?}: use auto, git or libgit2")]
    Unknown(String),
}

/// Why libgit2 built no pack.
#[derive(Debug, thiserror::Error)]
pub enum PackBuildError {
    #[error("partial clone (filter) needs pack_engine = git on this server")]
    FilterNeedsGit,
    #[error("{}", .0.message())]
    Libgit2(#[from] git2::Error),
}

impl PackEngine {
    /// Resolves the `pack_engine` setting: `git`, `libgit2`, or `auto`
    /// (git when a git binary is on PATH).
    pub fn resolve(setting: &str, path_var: Option<&std::ffi::OsStr>) -> Result<PackEngine, EngineError> {
        match setting {
            "libgit2" => Ok(PackEngine::Libgit2),
            "git" => find_git(path_var)
                .map(|binary| PackEngine::Git { binary })
                .ok_or(EngineError::NoGit),
            "auto" => Ok(find_git(path_var)
                .map(|binary| PackEngine::Git { binary })
                .unwrap_or(PackEngine::Libgit2)),
            other => Err(EngineError::Unknown(other.to_string())),
        }
    }

    /// The git binary, for the git engine.
    pub fn git_binary(&self) -> Option<&Path> {
        match self {
            PackEngine::Git { binary } => Some(binary),
            PackEngine::Libgit2 => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            PackEngine::Git { .. } => "git",
            PackEngine::Libgit2 => "libgit2",
        }
    }
}

fn find_git(path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path_var?)
        .map(|dir| dir.join("git"))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Builds the pack of `spec` with libgit2, handing it to `out` chunk by
/// chunk (`out` returns false to stop). Without a shallow boundary the
/// haves' objects are left out (libgit2 marks what they reach as
/// uninteresting); across a shallow boundary the commits are chosen by hand
/// and every object of their trees is sent, which is larger but complete.
pub fn build_with_libgit2(
    repo_dir: &Path,
    spec: &PackSpec,
    out: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<(), PackBuildError> {
    if spec.req.filter.is_some() {
        return Err(PackBuildError::FilterNeedsGit);
    }
    let repo = Repository::open(repo_dir)?;
    let mut pb = repo.packbuilder()?;
    let wants: Vec<Oid> = spec
        .req
        .wants
        .iter()
        .chain(&spec.shallow.extra_wants)
        .copied()
        .collect();
    let haves: Vec<Oid> = spec.common.iter().chain(&spec.shallow.extra_haves).copied().collect();
    let mut commits: HashSet<Oid> = HashSet::new();
    let mut others: Vec<Oid> = Vec::new();
    for &w in &wants {
        match repo.find_object(w, None).map(|o| o.kind()) {
            Ok(Some(ObjectType::Commit)) => {}
            Ok(Some(ObjectType::Tag)) => {
                others.push(w);
                if let Ok(c) = repo.find_object(w, None).and_then(|o| o.peel_to_commit()) {
                    commits.insert(c.id());
                }
            }
            Ok(_) => others.push(w),
            Err(e) => return Err(e.into()),
        }
    }
    let starts: Vec<Oid> = wants
        .iter()
        .filter_map(|&w| repo.find_object(w, None).ok()?.peel_to_commit().ok().map(|c| c.id()))
        .collect();
    if spec.shallow.boundary.is_empty() {
        let walk = || -> Result<git2::Revwalk<'_>, git2::Error> {
            let mut walk = repo.revwalk()?;
            for c in &starts {
                walk.push(*c)?;
            }
            for h in &haves {
                if repo.find_commit(*h).is_ok() {
                    walk.hide(*h)?;
                }
            }
            Ok(walk)
        };
        if spec.req.options.include_tag {
            for id in walk()? {
                commits.insert(id?);
            }
        }
        pb.insert_walk(&mut walk()?)?;
    } else {
        let boundary: HashSet<Oid> = spec.shallow.boundary.iter().copied().collect();
        let stop: HashSet<Oid> = haves.iter().copied().collect();
        let mut stack = starts.clone();
        while let Some(c) = stack.pop() {
            if stop.contains(&c) || !commits.insert(c) {
                continue;
            }
            pb.insert_commit(c)?;
            if boundary.contains(&c) {
                continue;
            }
            let commit = repo.find_commit(c)?;
            stack.extend(commit.parent_ids());
        }
    }
    for o in others {
        pb.insert_recursive(o, None)?;
    }
    if spec.req.options.include_tag {
        for r in repo.references_glob("refs/tags/*")?.flatten() {
            let Some(id) = r.target() else { continue };
            let Ok(tag) = repo.find_tag(id) else { continue };
            if tag
                .target()
                .and_then(|t| t.peel_to_commit())
                .is_ok_and(|c| commits.contains(&c.id()))
            {
                pb.insert_object(id, None)?;
            }
        }
    }
    let mut stopped = false;
    pb.foreach(|chunk| {
        if !out(chunk) {
            stopped = true;
            return false;
        }
        true
    })
    .or_else(|e| if stopped { Ok(()) } else { Err(e) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::negotiate::ShallowUpdate;
    use crate::git::test_fixtures::{self, git, git_io};
    use crate::git::upload_request::UploadRequest;

    #[test]
    fn engine_setting() {
        let dir = tempfile::tempdir().unwrap();
        let none = std::ffi::OsString::from(dir.path());
        assert_eq!(PackEngine::resolve("auto", Some(&none)), Ok(PackEngine::Libgit2));
        assert_eq!(PackEngine::resolve("git", Some(&none)), Err(EngineError::NoGit));
        assert!(EngineError::NoGit.to_string().contains("no git binary"));
        let unknown = PackEngine::resolve("fast", Some(&none)).unwrap_err();
        assert_eq!(unknown, EngineError::Unknown("fast".into()));
        assert!(unknown.to_string().contains("unknown pack_engine \"fast\""));
        let path = std::env::var_os("PATH");
        assert!(matches!(
            PackEngine::resolve("auto", path.as_deref()),
            Ok(PackEngine::Git { .. })
        ));
        assert_eq!(PackEngine::resolve("libgit2", path.as_deref()), Ok(PackEngine::Libgit2));
    }

    fn pack(repo: &Path, spec: &PackSpec) -> Vec<u8> {
        let mut bytes = Vec::new();
        build_with_libgit2(repo, spec, &mut |c| {
            bytes.extend_from_slice(c);
            true
        })
        .unwrap();
        bytes
    }

    /// Indexes `pack` into a fresh repository and returns `git rev-list
    /// --objects` of `tip` there (which fails on a missing object).
    fn objects_after_index(pack: &[u8], tip: &str, shallow: &[Oid]) -> String {
        let dest = tempfile::tempdir().unwrap();
        git(dest.path(), &["init", "-q", "--bare", "."]);
        let (_, ok) = git_io(dest.path(), &["index-pack", "--stdin", "--fix-thin"], &[], pack);
        assert!(ok, "git index-pack refused the pack");
        let lines: String = shallow.iter().map(|o| format!("{o}\n")).collect();
        std::fs::write(dest.path().join("shallow"), lines).unwrap();
        git(dest.path(), &["rev-list", "--objects", tip])
    }

    #[test]
    fn full_and_incremental_packs_are_complete() {
        let dir = test_fixtures::rich_repo();
        let repo = Repository::open(dir.path()).unwrap();
        let head = repo.head().unwrap().target().unwrap();
        let mut req = UploadRequest {
            wants: vec![head],
            ..Default::default()
        };
        req.options.include_tag = true;
        let spec = PackSpec {
            req,
            common: vec![],
            shallow: ShallowUpdate::default(),
        };
        let listed = objects_after_index(&pack(dir.path(), &spec), &head.to_string(), &[]);
        let expected = git(dir.path(), &["rev-list", "--objects", &head.to_string()]);
        assert_eq!(listed.lines().count(), expected.lines().count());
        // An incremental pack leaves out what the have reaches.
        let parent = repo.find_commit(head).unwrap().parent_id(0).unwrap();
        let spec = PackSpec {
            common: vec![parent],
            ..spec
        };
        let small = pack(dir.path(), &spec);
        let full = pack(dir.path(), &PackSpec { common: vec![], ..spec });
        assert!(small.len() < full.len());
    }

    #[test]
    fn shallow_packs_stop_at_the_boundary() {
        let dir = test_fixtures::rich_repo();
        let repo = Repository::open(dir.path()).unwrap();
        let head = repo.head().unwrap().target().unwrap();
        let req = UploadRequest {
            wants: vec![head],
            depth: Some(1),
            ..Default::default()
        };
        let shallow = ShallowUpdate {
            shallow: vec![head],
            boundary: vec![head],
            ..Default::default()
        };
        let spec = PackSpec {
            req,
            common: vec![],
            shallow,
        };
        let listed = objects_after_index(&pack(dir.path(), &spec), &head.to_string(), &[head]);
        let tree = git(dir.path(), &["ls-tree", "-r", "-t", &head.to_string()]);
        // The commit, its root tree, and every tree and blob below it.
        assert_eq!(listed.lines().count(), 2 + tree.lines().count());
    }

    #[test]
    fn filters_need_the_git_engine() {
        let dir = test_fixtures::rich_repo();
        let req = UploadRequest {
            filter: Some("blob:none".into()),
            ..Default::default()
        };
        let spec = PackSpec {
            req,
            common: vec![],
            shallow: ShallowUpdate::default(),
        };
        let err = build_with_libgit2(dir.path(), &spec, &mut |_| true).unwrap_err();
        assert!(err.to_string().contains("pack_engine = git"), "{err}");
    }
}
