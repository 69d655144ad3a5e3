//! Repositories in and out of bundles, for backups. `git bundle create
//! --all` reads the refs once and then packs what they reach, so a bundle
//! of a repository that pushes keep changing is still consistent: its refs
//! as of one moment, with every object they need. Back, a bundle is
//! fetched (all refs) into a new bare repository, and HEAD and the kept
//! config are put back.

use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{bail, Context};

/// What a backup keeps of one repository besides its objects and refs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// What HEAD names (`refs/heads/main`); `None` when it is detached.
    pub head: Option<String>,
    /// The local config entries worth keeping ([`kept_config_key`]), in
    /// the file's order, keys as git lists them (lowercase).
    pub config: Vec<(String, String)>,
    /// False when the repository had no refs: git makes no empty bundle.
    pub bundled: bool,
}

/// The local config keys a backup keeps and a restore sets: gitpat's own
/// (`core.logAllRefUpdates`) and the tuning an operator may have given a
/// repository. Nothing that names a program or a path (hooks, fsmonitor,
/// ssh commands, alternates): a restore must not be a way to run something.
pub fn kept_config_key(key: &str) -> bool {
    const SECTIONS: [&str; 5] = ["gc.", "pack.", "repack.", "receive.", "transfer."];
    key == "core.logallrefupdates"
        || key == "core.compression"
        || key == "core.bigfilethreshold"
        || SECTIONS.iter().any(|s| key.starts_with(s))
}

fn run(cmd: &mut std::process::Command, what: &str) -> anyhow::Result<Output> {
    // Messages in English whatever the locale: they end up in errors.
    cmd.env("LC_ALL", "C").stdin(std::process::Stdio::null());
    cmd.output().with_context(|| format!("cannot start git to {what}"))
}

fn failure(out: &Output, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "git could not {what} ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

fn checked(out: Output, what: &str) -> anyhow::Result<Output> {
    if !out.status.success() {
        return Err(failure(&out, what));
    }
    Ok(out)
}

/// True when the repository has at least one ref.
fn has_refs(git: &Path, repo: &Path) -> anyhow::Result<bool> {
    let what = format!("list the refs of {}", repo.display());
    let out = checked(
        run(
            super::git_command(git, repo).args(["for-each-ref", "--count=1", "--format=%(refname)"]),
            &what,
        )?,
        &what,
    )?;
    Ok(!out.stdout.iter().all(u8::is_ascii_whitespace))
}

/// HEAD's target, read before the bundle: a default branch changed during
/// the backup is seen as before or after, either being a state it had.
fn head(git: &Path, repo: &Path) -> anyhow::Result<Option<String>> {
    let what = format!("read HEAD of {}", repo.display());
    let out = run(
        super::git_command(git, repo).args(["symbolic-ref", "-q", "HEAD"]),
        &what,
    )?;
    match out.status.code() {
        Some(0) => Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_string())),
        // Detached.
        Some(1) => Ok(None),
        _ => Err(failure(&out, &what)),
    }
}

fn local_config(git: &Path, repo: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let what = format!("read the config of {}", repo.display());
    let out = checked(
        run(
            super::git_command(git, repo).args(["config", "--local", "--null", "--list"]),
            &what,
        )?,
        &what,
    )?;
    // `key\nvalue\0` each (a key without a value has no newline).
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('\n').unwrap_or((&e, ""));
            kept_config_key(k).then(|| (k.to_string(), v.to_string()))
        })
        .collect())
}

/// Writes the bundle of every ref of the bare repository `repo` to
/// `bundle` (which must not exist), with HEAD and the kept config. A
/// repository without refs gives no bundle (`bundled: false`).
pub fn take(git: &Path, repo: &Path, bundle: &Path) -> anyhow::Result<Taken> {
    let head = head(git, repo)?;
    let config = local_config(git, repo)?;
    let what = format!("bundle {}", repo.display());
    let out = run(
        super::git_command(git, repo)
            .args(["bundle", "create", "--quiet"])
            .arg(bundle)
            .arg("--all"),
        &what,
    )?;
    if out.status.success() {
        return Ok(Taken {
            head,
            config,
            bundled: true,
        });
    }
    let _ = std::fs::remove_file(bundle);
    // git refuses an empty bundle; whether that was why is asked of the
    // repository, not of the message's wording.
    if !has_refs(git, repo)? {
        return Ok(Taken {
            head,
            config,
            bundled: false,
        });
    }
    Err(failure(&out, &what))
}

/// Fills the new, empty bare repository `repo` from `bundle` (every ref of
/// it; `None`: the repository stays empty), sets the kept config and points
/// HEAD at `head`.
pub fn put_back(
    git: &Path,
    repo: &Path,
    bundle: Option<&Path>,
    head: Option<&str>,
    config: &[(String, String)],
) -> anyhow::Result<()> {
    let mut keys: Vec<&str> = config.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    for key in keys {
        if !kept_config_key(key) {
            bail!("the config key {key:?} is not one a backup keeps");
        }
        // Start from none, so a key the new repository already has (as
        // core.logallrefupdates) is not doubled.
        let what = format!("set the config of {}", repo.display());
        let out = run(
            super::git_command(git, repo).args(["config", "--local", "--unset-all", key]),
            &what,
        )?;
        // 5: there was no such key.
        if !matches!(out.status.code(), Some(0 | 5)) {
            return Err(failure(&out, &what));
        }
        for (_, value) in config.iter().filter(|(k, _)| k == key) {
            checked(
                run(
                    super::git_command(git, repo).args(["config", "--local", "--add", key, value]),
                    &what,
                )?,
                &what,
            )?;
        }
    }
    if let Some(bundle) = bundle {
        let what = format!("fetch {} into {}", bundle.display(), repo.display());
        checked(
            run(
                super::git_command(git, repo)
                    .args([
                        "-c",
                        "fetch.unpackLimit=1",
                        "fetch",
                        "--quiet",
                        "--no-write-fetch-head",
                        "--no-auto-gc",
                    ])
                    .arg(bundle)
                    .arg("+refs/*:refs/*"),
                &what,
            )?,
            &what,
        )?;
    }
    if let Some(head) = head {
        if !head.starts_with("refs/") || !git2::Reference::is_valid_name(head) {
            bail!("{head:?} is not a ref HEAD can name");
        }
        let what = format!("set HEAD of {}", repo.display());
        checked(
            run(
                super::git_command(git, repo).args(["symbolic-ref", "HEAD", head]),
                &what,
            )?,
            &what,
        )?;
    }
    Ok(())
}

/// The repositories under `root` as `namespace/name` (no `.git`), sorted:
/// bare repositories at any depth, leaving out what starts with a dot
/// (`.tmp`: staging and trash).
pub fn list(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with('.') || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p: PathBuf = e.path();
            if p.extension().is_some_and(|x| x == "git") && p.join("objects").is_dir() && p.join("HEAD").exists() {
                if let Some(rel) = p
                    .strip_prefix(root)
                    .ok()
                    .and_then(|r| r.to_str())
                    .and_then(|r| r.strip_suffix(".git"))
                {
                    out.push(rel.to_string());
                }
            } else {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git() -> PathBuf {
        crate::git::pack::PackEngine::resolve("git", std::env::var_os("PATH").as_deref())
            .ok()
            .and_then(|e| e.git_binary().map(Path::to_path_buf))
            .expect("git on PATH")
    }

    #[test]
    fn kept_config_keys() {
        for k in [
            "core.logallrefupdates",
            "gc.auto",
            "receive.fsckobjects",
            "pack.threads",
        ] {
            assert!(kept_config_key(k), "{k}");
        }
        for k in [
            "core.hookspath",
            "core.fsmonitor",
            "core.sshcommand",
            "uploadpack.packobjectshook",
            "remote.origin.url",
        ] {
            assert!(!kept_config_key(k), "{k}");
        }
    }

    #[test]
    fn an_empty_repository_has_no_bundle_and_a_full_one_comes_back() {
        let git = git();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repositories");
        let empty = root.join("alice/empty.git");
        git2::Repository::init_bare(&empty).unwrap();
        std::fs::create_dir_all(root.join(".tmp/x.git/objects")).unwrap();
        std::fs::write(root.join(".tmp/x.git/HEAD"), "ref: refs/heads/main\n").unwrap();
        let taken = take(&git, &empty, &tmp.path().join("empty.bundle")).unwrap();
        assert!(!taken.bundled);
        assert!(!tmp.path().join("empty.bundle").exists());

        let full = root.join("team/sub/full.git");
        let repo = git2::Repository::init_bare(&full).unwrap();
        repo.config().unwrap().set_str("core.logAllRefUpdates", "true").unwrap();
        repo.config().unwrap().set_str("core.hooksPath", "/bin").unwrap();
        let sig = git2::Signature::now("a", "a@example.com").unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let c = repo
            .commit(Some("refs/heads/dev"), &sig, &sig, "one", &tree, &[])
            .unwrap();
        repo.reference("refs/tags/v1", c, false, "").unwrap();
        repo.set_head("refs/heads/dev").unwrap();
        assert_eq!(list(&root), ["alice/empty", "team/sub/full"]);

        let bundle = tmp.path().join("full.bundle");
        let taken = take(&git, &full, &bundle).unwrap();
        assert_eq!(taken.head.as_deref(), Some("refs/heads/dev"));
        assert_eq!(
            taken.config,
            [("core.logallrefupdates".to_string(), "true".to_string())]
        );
        assert!(taken.bundled);

        let back = tmp.path().join("back.git");
        let r = git2::Repository::init_bare(&back).unwrap();
        r.config().unwrap().set_str("core.logAllRefUpdates", "true").unwrap();
        put_back(&git, &back, Some(&bundle), taken.head.as_deref(), &taken.config).unwrap();
        let r = git2::Repository::open_bare(&back).unwrap();
        assert_eq!(r.refname_to_id("refs/heads/dev").unwrap(), c);
        assert_eq!(r.refname_to_id("refs/tags/v1").unwrap(), c);
        assert_eq!(
            r.find_reference("HEAD").unwrap().symbolic_target(),
            Some("refs/heads/dev")
        );
        assert_eq!(
            local_config(&git, &back).unwrap(),
            [("core.logallrefupdates".to_string(), "true".to_string())]
        );
        let bad = put_back(&git, &back, None, None, &[("core.hookspath".into(), "/bin".into())]);
        assert!(bad.is_err());
    }
}
