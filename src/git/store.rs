//! Where repositories live: `<root>/<namespace>/<name>.git`, bare, made and
//! removed with git2. Work in progress happens under `<root>/.tmp/` (no valid
//! path can start with a dot), so a half-made repository never appears at
//! its real path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use git2::{Repository, RepositoryInitOptions};

use crate::git::refs::RefCache;

/// A validated repository path: `namespace/name`, the namespace possibly
/// nested (`group/sub/name`), without the `.git` suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPath(String);

/// GitLab allows 20 levels of nested groups; with the project, 21 segments.
pub const MAX_SEGMENTS: usize = 21;
pub const MAX_SEGMENT_LEN: usize = 255;

impl RepoPath {
    /// Validates a path as a person types it: `alice/tools`, `alice/tools.git`
    /// or `group/sub/tools`. The rules are GitLab's: each segment holds only
    /// letters, digits, `_`, `-` and `.`, does not start with `-` or `.`, does
    /// not end with `.`, `.git` or `.atom`, and has no `..`.
    pub fn parse(input: &str) -> Result<RepoPath, PathError> {
        let path = input.strip_suffix(".git").unwrap_or(input);
        if path.is_empty() {
            return Err(PathError::Empty);
        }
        if path.starts_with('/') {
            return Err(PathError::Absolute(input.to_string()));
        }
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() < 2 {
            return Err(PathError::NoNamespace {
                input: input.to_string(),
                path: path.to_string(),
            });
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(PathError::TooDeep(input.to_string()));
        }
        for seg in &segments {
            check_segment(seg).map_err(|why| PathError::Segment {
                input: input.to_string(),
                why,
            })?;
        }
        Ok(RepoPath(path.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Everything before the last segment.
    pub fn namespace(&self) -> &str {
        self.0.rsplit_once('/').map(|(ns, _)| ns).unwrap_or_default()
    }

    /// The first segment: the top-level namespace (a user, or a group).
    pub fn top_namespace(&self) -> &str {
        self.0.split('/').next().unwrap_or_default()
    }

    /// The last segment.
    pub fn name(&self) -> &str {
        self.0.rsplit_once('/').map(|(_, n)| n).unwrap_or(&self.0)
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A repository path that GitLab's rules refuse; the text says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the repository path is empty")]
    Empty,
    #[error("{0:?} is an absolute path; give namespace/name")]
    Absolute(String),
    #[error("{input:?} has no namespace; give namespace/name, e.g. alice/{path}")]
    NoNamespace { input: String, path: String },
    #[error("{0:?} is nested too deeply (at most {MAX_SEGMENTS} segments)")]
    TooDeep(String),
    #[error("invalid repository path {input:?}: {why}")]
    Segment { input: String, why: SegmentError },
}

/// What is wrong with one segment of a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("it has an empty segment (two slashes, or a slash at the end)")]
    Empty,
    #[error("a segment is longer than {MAX_SEGMENT_LEN} characters")]
    TooLong,
    #[error("{0:?} is not allowed: use letters, digits, '_', '-' and '.'")]
    Character(char),
    #[error("segment {0:?} starts with '-' or '.'")]
    BadStart(String),
    #[error("segment {0:?} ends with '.' or holds '..'")]
    Dots(String),
    #[error("segment {0:?} ends with .git or .atom")]
    Suffix(String),
}

fn check_segment(seg: &str) -> Result<(), SegmentError> {
    if seg.is_empty() {
        return Err(SegmentError::Empty);
    }
    if seg.len() > MAX_SEGMENT_LEN {
        return Err(SegmentError::TooLong);
    }
    if let Some(c) = seg
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(SegmentError::Character(c));
    }
    if seg.starts_with('-') || seg.starts_with('.') {
        return Err(SegmentError::BadStart(seg.to_string()));
    }
    if seg.ends_with('.') || seg.contains("..") {
        return Err(SegmentError::Dots(seg.to_string()));
    }
    let lower = seg.to_ascii_lowercase();
    if lower.ends_with(".git") || lower.ends_with(".atom") {
        return Err(SegmentError::Suffix(seg.to_string()));
    }
    Ok(())
}

/// The default branch of a new repository.
pub const DEFAULT_BRANCH: &str = "main";

/// Is `name` a valid branch name for git?
pub fn is_valid_branch_name(name: &str) -> bool {
    !name.is_empty() && git2::Reference::is_valid_name(&format!("refs/heads/{name}"))
}

/// The folder that holds every repository.
#[derive(Debug, Clone)]
pub struct RepoStore {
    root: PathBuf,
    /// The refs of the repositories lately advertised.
    pub refs: Arc<RefCache>,
    /// The git binary imports fetch with; libgit2 without it.
    git: Option<PathBuf>,
}

impl RepoStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RepoStore {
            root: root.into(),
            refs: Arc::new(RefCache::default()),
            git: None,
        }
    }

    /// Imports fetch with this git binary (the git engine's).
    pub fn with_git(mut self, git: Option<PathBuf>) -> Self {
        self.git = git;
        self
    }

    pub fn git(&self) -> Option<&Path> {
        self.git.as_deref()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a repository lives on disk.
    pub fn path_of(&self, path: &RepoPath) -> PathBuf {
        self.root.join(format!("{}.git", path.as_str()))
    }

    fn tmp_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(".tmp");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir.join(crate::fsutil::random_hex(12)?))
    }

    /// Builds a new bare repository in a temporary folder, empty with HEAD on
    /// `branch` (default `main`), or importing the branches and tags of the
    /// repository at `import`: HEAD then names `branch`, which must exist
    /// there, or else the source's HEAD branch. Returns the staged
    /// repository, to be put in place with [`Staged::install`].
    pub fn stage(&self, branch: Option<&str>, import: Option<&Path>) -> anyhow::Result<Staged> {
        let tmp = self.tmp_dir()?;
        let default_branch = branch.unwrap_or(DEFAULT_BRANCH);
        let staged = Staged {
            tmp,
            default_branch: default_branch.to_string(),
        };
        let mut opts = RepositoryInitOptions::new();
        opts.bare(true).no_reinit(true).mkdir(true);
        opts.initial_head(&format!("refs/heads/{default_branch}"));
        let repo = Repository::init_opts(&staged.tmp, &opts)
            .with_context(|| format!("cannot create a repository in {}", staged.tmp.display()))?;
        // Reflogs record who pushed (the authenticated user) for every branch.
        repo.config()?.set_str("core.logAllRefUpdates", "true")?;
        let mut staged = staged;
        if let Some(src) = import {
            staged.default_branch = import_into(&repo, src, branch, self.git.as_deref())?;
        }
        Ok(staged)
    }

    /// Moves a repository out of the way (into `.tmp`), to be removed with
    /// [`Trashed::purge`] or put back with [`Trashed::restore`].
    pub fn trash(&self, path: &RepoPath) -> anyhow::Result<Option<Trashed>> {
        let dest = self.path_of(path);
        if !dest.exists() {
            return Ok(None);
        }
        let tmp = self.tmp_dir()?;
        std::fs::rename(&dest, &tmp).with_context(|| format!("cannot move {} aside", dest.display()))?;
        Ok(Some(Trashed { tmp, dest }))
    }

    /// Opens an existing repository.
    pub fn open(&self, path: &RepoPath) -> anyhow::Result<Repository> {
        let p = self.path_of(path);
        Repository::open_bare(&p).with_context(|| format!("cannot open the repository {}", p.display()))
    }
}

/// A repository built in a temporary folder; dropped, it is removed.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    /// The default branch: as asked, or the imported repository's HEAD.
    pub default_branch: String,
}

impl Staged {
    /// Moves the repository to its path. Fails, changing nothing, if
    /// something is already there.
    pub fn install(self, store: &RepoStore, path: &RepoPath) -> anyhow::Result<Installed> {
        let dest = store.path_of(path);
        if dest.exists() {
            bail!("{} already exists on disk", dest.display());
        }
        let parent = dest.parent().context("repository path has no parent")?;
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        std::fs::rename(&self.tmp, &dest)
            .with_context(|| format!("cannot move the repository to {}", dest.display()))?;
        Ok(Installed { dest })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.tmp.exists() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// A repository just put in place; [`Installed::undo`] removes it again.
#[derive(Debug)]
pub struct Installed {
    dest: PathBuf,
}

impl Installed {
    pub fn undo(self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dest) {
            tracing::error!("cannot remove {} after a failed create: {e}", self.dest.display());
        }
    }
}

/// A repository moved aside for deletion.
#[derive(Debug)]
pub struct Trashed {
    tmp: PathBuf,
    dest: PathBuf,
}

impl Trashed {
    pub fn purge(self) -> anyhow::Result<()> {
        std::fs::remove_dir_all(&self.tmp).with_context(|| format!("cannot remove {}", self.tmp.display()))
    }

    pub fn restore(self) -> anyhow::Result<()> {
        std::fs::rename(&self.tmp, &self.dest).with_context(|| format!("cannot put back {}", self.dest.display()))
    }
}

/// Fetches the branches and tags of `src` into `repo` (with `git fetch`
/// when there is a git binary: it keeps the source's deltas and streams,
/// where libgit2 rebuilds the pack in memory); points HEAD at `wanted`
/// (which must exist), else at the source's HEAD branch, else at `main`;
/// returns that branch.
fn import_into(repo: &Repository, src: &Path, wanted: Option<&str>, git: Option<&Path>) -> anyhow::Result<String> {
    let source = Repository::open(src).with_context(|| format!("cannot open {} as a git repository", src.display()))?;
    let head_branch = source
        .find_reference("HEAD")
        .ok()
        .and_then(|h| h.symbolic_target().map(str::to_string))
        .and_then(|t| t.strip_prefix("refs/heads/").map(str::to_string));
    let url = source
        .path()
        .to_str()
        .context("the import path is not UTF-8")?
        .to_string();
    drop(source);
    const REFSPECS: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
    match git {
        Some(git) => {
            let out = super::git_command(git, repo.path())
                // Keep what arrives as one pack (with its deltas), even a
                // few objects.
                .args([
                    "-c",
                    "fetch.unpackLimit=1",
                    "fetch",
                    "--quiet",
                    "--no-write-fetch-head",
                    "--no-auto-gc",
                    "--",
                ])
                .arg(&url)
                .args(REFSPECS)
                .stdin(std::process::Stdio::null())
                .output()
                .with_context(|| format!("cannot run {}", git.display()))?;
            if !out.status.success() {
                bail!(
                    "cannot import the repository at {}: {}",
                    src.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        None => {
            let mut remote = repo.remote_anonymous(&url)?;
            remote
                .fetch(&REFSPECS, None, None)
                .with_context(|| format!("cannot import the repository at {}", src.display()))?;
        }
    }
    let branch = match wanted {
        Some(b) if repo.find_reference(&format!("refs/heads/{b}")).is_err() => {
            bail!("the imported repository has no branch {b:?} to make the default")
        }
        Some(b) => b.to_string(),
        None => head_branch.unwrap_or_else(|| DEFAULT_BRANCH.to_string()),
    };
    repo.set_head(&format!("refs/heads/{branch}"))?;
    Ok(branch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for p in ["alice/tools", "alice/tools.git", "group/sub/tools", "a_b/c-d.e", "A/B"] {
            assert!(RepoPath::parse(p).is_ok(), "{p}");
        }
        let p = RepoPath::parse("group/sub/tools.git").unwrap();
        assert_eq!(p.as_str(), "group/sub/tools");
        assert_eq!(p.namespace(), "group/sub");
        assert_eq!(p.top_namespace(), "group");
        assert_eq!(p.name(), "tools");
    }

    #[test]
    fn invalid_paths() {
        for p in [
            "",
            "tools",
            "/etc/passwd",
            "alice/../etc",
            "alice/..",
            "../alice/x",
            "alice/.hidden",
            "alice/-x",
            "alice//x",
            "alice/x/",
            "alice/x.git/y",
            "alice/x.atom",
            "alice/x.",
            "alice/x y",
            "alice/x\\y",
            "alice/x\0y",
            "alice/ünï",
            "alice/x.git.git",
        ] {
            assert!(RepoPath::parse(p).is_err(), "{p:?} should be refused");
        }
        let deep = vec!["a"; 22].join("/");
        assert!(RepoPath::parse(&deep).unwrap_err().to_string().contains("too deeply"));
    }

    #[test]
    fn branch_names() {
        assert!(is_valid_branch_name("main"));
        assert!(is_valid_branch_name("feature/x"));
        assert!(!is_valid_branch_name(""));
        assert!(!is_valid_branch_name("a..b"));
        assert!(!is_valid_branch_name("a b"));
    }

    #[test]
    fn stage_install_trash() {
        let dir = tempfile::tempdir().unwrap();
        let store = RepoStore::new(dir.path());
        let path = RepoPath::parse("alice/x").unwrap();
        let staged = store.stage(Some("trunk"), None).unwrap();
        let installed = staged.install(&store, &path).unwrap();
        let repo = store.open(&path).unwrap();
        assert!(repo.is_bare());
        assert_eq!(
            repo.find_reference("HEAD").unwrap().symbolic_target(),
            Some("refs/heads/trunk")
        );
        // a second install at the same path fails and leaves the first alone
        let again = store.stage(None, None).unwrap();
        assert!(again.install(&store, &path).is_err());
        assert!(store.open(&path).is_ok());
        let t = store.trash(&path).unwrap().unwrap();
        assert!(!store.path_of(&path).exists());
        t.restore().unwrap();
        assert!(store.path_of(&path).exists());
        installed.undo();
        assert!(!store.path_of(&path).exists());
        // nothing is left behind in .tmp
        assert_eq!(std::fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
    }
}
