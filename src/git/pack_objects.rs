//! The `git pack-objects --revs --stdout` invocation that produces the
//! pack for a fetch, as git's upload-pack builds it: arguments and the
//! text to write to its stdin. Running it (and streaming its stdout
//! through side-band) is the caller's business.

use git2::Oid;

use crate::git::negotiate::ShallowUpdate;
use crate::git::upload_request::UploadRequest;

/// What to run: `git <args>` with `stdin` written to its standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackObjectsCommand {
    /// Arguments after `git` (starting with `pack-objects`, or with
    /// `--shallow-file ""` when a shallow boundary applies).
    pub args: Vec<String>,
    /// The rev-list input: `--shallow <oid>` lines, the wants, `--not`,
    /// the common haves, and an empty line that ends the list.
    pub stdin: String,
}

/// Build the pack-objects command for a fetch.
///
/// * `req`: the parsed request (wants, filter, and the pack options
///   thin-pack, ofs-delta, include-tag);
/// * `common`: the haves the repository holds (from negotiation);
/// * `shallow`: the shallow update (boundary, extra wants and haves);
/// * `progress`: pass `--progress` (only when the client can receive it
///   on side-band 2 and did not say no-progress), else `-q`.
///
/// Guarantees: every line of `stdin` is an object id or one of the
/// fixed keywords, so client text never reaches pack-objects' stdin; the
/// filter spec is passed as a single `--filter=<spec>` argument.
pub fn pack_objects_command(
    req: &UploadRequest,
    common: &[Oid],
    shallow: &ShallowUpdate,
    progress: bool,
) -> PackObjectsCommand {
    PackObjectsCommand {
        args: arguments(req, !shallow.boundary.is_empty(), progress),
        stdin: stdin_text(req, common, shallow),
    }
}

/// The argument list, in upload-pack's order.
fn arguments(req: &UploadRequest, has_shallow: bool, progress: bool) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if has_shallow {
        // Ignore any shallow file of the served repository: the boundary
        // comes from the --shallow lines alone.
        args.extend(["--shallow-file".to_string(), String::new()]);
    }
    args.extend(["pack-objects".to_string(), "--revs".to_string()]);
    if req.options.thin_pack {
        args.push("--thin".into());
    }
    args.push("--stdout".into());
    if has_shallow {
        args.push("--shallow".into());
    }
    args.push(if progress { "--progress" } else { "-q" }.into());
    if req.options.ofs_delta {
        args.push("--delta-base-offset".into());
    }
    if req.options.include_tag {
        args.push("--include-tag".into());
    }
    if let Some(spec) = &req.filter {
        args.push(format!("--filter={spec}"));
    }
    args
}

/// Checks a `filter` spec as git's upload-pack does before any work:
/// `blob:none`, `blob:limit=<n>[kmg]`, `tree:<depth>`, `sparse:oid=<rev>`,
/// `object:type=<type>`, and `combine:<a>+<b>...` of those (sub-specs
/// URL-encoded). The error is the text the client is shown.
pub fn validate_filter(spec: &str) -> Result<(), FilterError> {
    check_filter(spec, 0).map_err(|why| FilterError {
        spec: spec.to_string(),
        why,
    })
}

/// A filter-spec git's upload-pack would refuse; its text is git's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter-spec '{spec}': {why}")]
pub struct FilterError {
    spec: String,
    why: String,
}

fn check_filter(spec: &str, nesting: usize) -> Result<(), String> {
    let number = |n: &str, suffixes: bool| {
        let digits = if suffixes {
            n.strip_suffix(['k', 'K', 'm', 'M', 'g', 'G']).unwrap_or(n)
        } else {
            n
        };
        !digits.is_empty() && digits.len() <= 19 && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if spec == "blob:none" {
        Ok(())
    } else if let Some(n) = spec.strip_prefix("blob:limit=") {
        number(n, true)
            .then_some(())
            .ok_or_else(|| format!("'{n}' is not a size"))
    } else if let Some(n) = spec.strip_prefix("tree:") {
        number(n, false)
            .then_some(())
            .ok_or_else(|| format!("'{n}' is not a depth"))
    } else if let Some(rev) = spec.strip_prefix("sparse:oid=") {
        let ok = !rev.is_empty() && !rev.starts_with('-') && !rev.bytes().any(|b| b.is_ascii_control());
        ok.then_some(())
            .ok_or_else(|| "a sparse:oid filter needs an object".to_string())
    } else if spec.starts_with("sparse:path=") {
        Err("sparse:path filters support has been dropped".into())
    } else if let Some(t) = spec.strip_prefix("object:type=") {
        matches!(t, "blob" | "tree" | "commit" | "tag")
            .then_some(())
            .ok_or_else(|| format!("'{t}' is not an object type"))
    } else if let Some(subs) = spec.strip_prefix("combine:") {
        if nesting > 0 {
            return Err("combine filters cannot be nested".into());
        }
        for sub in subs.split('+') {
            let decoded = url_decode(sub).ok_or_else(|| format!("bad escape in '{sub}'"))?;
            if decoded.is_empty() {
                return Err("empty sub-filter in combine".into());
            }
            check_filter(&decoded, nesting + 1)?;
        }
        Ok(())
    } else {
        Err("unknown filter".into())
    }
}

/// `%XX` decoding of a combine sub-spec; `None` for a broken escape or a
/// result that is not UTF-8.
fn url_decode(s: &str) -> Option<String> {
    let broken = s.match_indices('%').any(|(i, _)| {
        s.as_bytes()
            .get(i + 1..i + 3)
            .is_none_or(|h| !h.iter().all(u8::is_ascii_hexdigit))
    });
    if broken {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The rev-list input fed to `pack-objects --revs`.
fn stdin_text(req: &UploadRequest, common: &[Oid], shallow: &ShallowUpdate) -> String {
    let mut text = String::new();
    for oid in &shallow.boundary {
        text.push_str(&format!("--shallow {oid}\n"));
    }
    for oid in req.wants.iter().chain(&shallow.extra_wants) {
        text.push_str(&format!("{oid}\n"));
    }
    text.push_str("--not\n");
    for oid in common.iter().chain(&shallow.extra_haves) {
        text.push_str(&format!("{oid}\n"));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::negotiate::{compute_shallow, negotiate_v0};
    use crate::git::test_fixtures::{self, git, git_io};
    use crate::git::upload_request::FetchOptions;
    use git2::Repository;
    use std::path::Path;

    fn oid(dir: &Path, rev: &str) -> Oid {
        Oid::from_str(&git(dir, &["rev-parse", rev])).unwrap()
    }

    /// Run the command in `src` and index its pack into `dst`; returns
    /// whether index-pack accepted it and the pack bytes.
    fn run(src: &Path, dst: &Path, cmd: &PackObjectsCommand) -> (bool, Vec<u8>) {
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let (pack, ok) = git_io(src, &args, &[], cmd.stdin.as_bytes());
        assert!(ok, "pack-objects failed");
        assert!(pack.starts_with(b"PACK"));
        let (_, ok) = git_io(dst, &["index-pack", "--stdin", "--fix-thin"], &[], &pack);
        (ok, pack)
    }

    fn options() -> FetchOptions {
        FetchOptions {
            thin_pack: true,
            ofs_delta: true,
            include_tag: true,
            ..Default::default()
        }
    }

    #[test]
    fn filter_specs_are_checked_like_git() {
        for ok in [
            "blob:none",
            "blob:limit=0",
            "blob:limit=1k",
            "blob:limit=10M",
            "tree:0",
            "tree:3",
            "sparse:oid=main:sparse",
            "object:type=blob",
            "combine:blob:none+tree:2",
            "combine:blob%3Alimit%3D1k+object%3Atype%3Dtree",
        ] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "blob",
            "blob:some",
            "blob:limit=",
            "blob:limit=-1",
            "blob:limit=1x",
            "tree:",
            "tree:-1",
            "tree:one",
            "sparse:oid=",
            "sparse:oid=--all",
            "sparse:path=/etc/passwd",
            "object:type=file",
            "combine:",
            "combine:blob:none+",
            "combine:combine:blob:none",
            "combine:blob%3",
            "--all",
        ] {
            let e = validate_filter(bad).expect_err(bad);
            assert!(e.to_string().starts_with("invalid filter-spec"), "{bad}: {e}");
        }
    }

    #[test]
    fn arguments_and_stdin() {
        let a = Oid::from_str("1111111111111111111111111111111111111111").unwrap();
        let b = Oid::from_str("2222222222222222222222222222222222222222").unwrap();
        let c = Oid::from_str("3333333333333333333333333333333333333333").unwrap();
        let req = UploadRequest {
            wants: vec![a],
            filter: Some("blob:none".into()),
            options: options(),
            ..Default::default()
        };
        let plain = pack_objects_command(&req, &[b], &ShallowUpdate::default(), true);
        assert_eq!(
            plain.args,
            vec![
                "pack-objects",
                "--revs",
                "--thin",
                "--stdout",
                "--progress",
                "--delta-base-offset",
                "--include-tag",
                "--filter=blob:none"
            ]
        );
        assert_eq!(plain.stdin, format!("{a}\n--not\n{b}\n\n"));
        let up = ShallowUpdate {
            boundary: vec![c],
            extra_wants: vec![b],
            extra_haves: vec![c],
            ..Default::default()
        };
        let req = UploadRequest {
            wants: vec![a],
            ..Default::default()
        };
        let shallow = pack_objects_command(&req, &[], &up, false);
        assert_eq!(
            shallow.args,
            vec![
                "--shallow-file",
                "",
                "pack-objects",
                "--revs",
                "--stdout",
                "--shallow",
                "-q"
            ]
        );
        assert_eq!(shallow.stdin, format!("--shallow {c}\n{a}\n{b}\n--not\n{c}\n\n"));
    }

    #[test]
    fn clone_pack_is_complete() {
        let src = test_fixtures::history_repo();
        let dst = test_fixtures::empty_repo();
        let main = oid(src.path(), "main");
        let req = UploadRequest {
            wants: vec![main],
            options: options(),
            done: true,
            ..Default::default()
        };
        let cmd = pack_objects_command(&req, &[], &ShallowUpdate::default(), false);
        let (ok, _) = run(src.path(), dst.path(), &cmd);
        assert!(ok);
        // Every object a clone of main needs is there, and the tag came
        // along through --include-tag.
        git(dst.path(), &["rev-list", "--objects", &main.to_string()]);
        let tag = oid(src.path(), "t7");
        git(dst.path(), &["cat-file", "-e", &tag.to_string()]);
    }

    #[test]
    fn thin_incremental_pack_completes_with_fix_thin() {
        let src = test_fixtures::history_repo();
        let dst = test_fixtures::empty_repo();
        let s = src.path().display().to_string();
        git(
            dst.path(),
            &["fetch", "-q", "--no-tags", &s, "refs/heads/side:refs/heads/side"],
        );
        let repo = Repository::open(src.path()).unwrap();
        let main = oid(src.path(), "main");
        let side = oid(src.path(), "side");
        let req = UploadRequest {
            wants: vec![main],
            haves: vec![side],
            done: true,
            options: options(),
            ..Default::default()
        };
        let n = negotiate_v0(&repo, &req.wants, &req.haves, true, &req.options);
        assert_eq!(n.common, vec![side]);
        let cmd = pack_objects_command(&req, &n.common, &ShallowUpdate::default(), false);
        let (ok, _) = run(src.path(), dst.path(), &cmd);
        assert!(ok);
        git(dst.path(), &["rev-list", "--objects", &main.to_string()]);
    }

    #[test]
    fn shallow_pack_stops_at_the_boundary() {
        let src = test_fixtures::history_repo();
        let dst = test_fixtures::empty_repo();
        let repo = Repository::open(src.path()).unwrap();
        let main = oid(src.path(), "main");
        let req = UploadRequest {
            wants: vec![main],
            depth: Some(2),
            done: true,
            options: options(),
            ..Default::default()
        };
        let up = compute_shallow(&repo, &req, &|_| true).unwrap();
        assert_eq!(up.shallow, vec![oid(src.path(), "main~1")]);
        let cmd = pack_objects_command(&req, &[], &up, false);
        let (ok, pack) = run(src.path(), dst.path(), &cmd);
        assert!(ok);
        // Two commits, two trees, two blobs (f changes; s is shared... at
        // most the objects of two commits), and nothing older.
        let count = u32::from_be_bytes([pack[8], pack[9], pack[10], pack[11]]);
        assert!(count <= 8, "{count} objects");
        let shallow_file: String = up.shallow.iter().map(|o| format!("{o}\n")).collect();
        std::fs::write(dst.path().join(".git/shallow"), shallow_file).unwrap();
        git(dst.path(), &["rev-list", "--objects", &main.to_string()]);
        let old = oid(src.path(), "main~3");
        let (_, present) = git_io(dst.path(), &["cat-file", "-e", &old.to_string()], &[], b"");
        assert!(!present);
    }

    #[test]
    fn filter_leaves_blobs_out() {
        let src = test_fixtures::history_repo();
        let dst = test_fixtures::empty_repo();
        let main = oid(src.path(), "main");
        let req = UploadRequest {
            wants: vec![main],
            filter: Some("blob:none".into()),
            done: true,
            options: options(),
            ..Default::default()
        };
        let cmd = pack_objects_command(&req, &[], &ShallowUpdate::default(), false);
        let (ok, _) = run(src.path(), dst.path(), &cmd);
        assert!(ok);
        let blob = oid(src.path(), "main:f");
        let (_, present) = git_io(dst.path(), &["cat-file", "-e", &blob.to_string()], &[], b"");
        assert!(!present);
        let tree = oid(src.path(), "main^{tree}");
        git(dst.path(), &["cat-file", "-e", &tree.to_string()]);
    }
}
