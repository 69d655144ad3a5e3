//! Ref advertisement: the v0 `info/refs` bodies of upload-pack and
//! receive-pack, the v2 capability advertisement, and v2 `ls-refs`.
//!
//! Refs are read once into a list of [`AdvertisedRef`] (`git::refs`); every
//! output format is then a pure function of that list.

use std::fmt;

use git2::Oid;

use crate::git::pktline::{self, PktError};

/// The all-zero object id used for `capabilities^{}` lines.
pub const ZERO_ID: &str = "0000000000000000000000000000000000000000";

/// A ref as the advertisement needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvertisedRef {
    /// A ref pointing at an object that is not a tag.
    Direct { name: String, oid: Oid },
    /// A ref pointing at an annotated tag; `peeled` is the first non-tag
    /// object found by following the tag (through nested tags).
    Peeled { name: String, tag: Oid, peeled: Oid },
    /// A symbolic ref whose target exists; `oid` is what the target points
    /// at and `peeled` is set when that is an annotated tag.
    Symbolic {
        name: String,
        target: String,
        oid: Oid,
        peeled: Option<Oid>,
    },
    /// A symbolic ref (in practice HEAD) whose target does not exist yet.
    Unborn { name: String, target: String },
}

impl AdvertisedRef {
    /// The full ref name (`HEAD`, `refs/heads/main`, ...).
    pub fn name(&self) -> &str {
        match self {
            AdvertisedRef::Direct { name, .. }
            | AdvertisedRef::Peeled { name, .. }
            | AdvertisedRef::Symbolic { name, .. }
            | AdvertisedRef::Unborn { name, .. } => name,
        }
    }

    /// The object the ref points at (a tag object for tags), if born.
    pub fn oid(&self) -> Option<Oid> {
        match self {
            AdvertisedRef::Direct { oid, .. } | AdvertisedRef::Symbolic { oid, .. } => Some(*oid),
            AdvertisedRef::Peeled { tag, .. } => Some(*tag),
            AdvertisedRef::Unborn { .. } => None,
        }
    }

    /// The peeled object of an annotated tag, if the ref points at one.
    pub fn peeled(&self) -> Option<Oid> {
        match self {
            AdvertisedRef::Peeled { peeled, .. } => Some(*peeled),
            AdvertisedRef::Symbolic { peeled, .. } => *peeled,
            _ => None,
        }
    }

    /// The target of a symbolic (or unborn) ref.
    pub fn symref_target(&self) -> Option<&str> {
        match self {
            AdvertisedRef::Symbolic { target, .. } | AdvertisedRef::Unborn { target, .. } => Some(target),
            _ => None,
        }
    }
}

/// An advertisement error.
#[derive(Debug)]
pub enum AdvertiseError {
    /// Reading the repository failed.
    Git(git2::Error),
    /// A line did not fit in a pkt-line (absurdly long ref name).
    Pkt(PktError),
    /// An `ls-refs` argument this server does not know.
    UnknownArgument(String),
}

impl fmt::Display for AdvertiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdvertiseError::Git(e) => write!(f, "reading refs: {}", e.message()),
            AdvertiseError::Pkt(e) => write!(f, "{e}"),
            AdvertiseError::UnknownArgument(a) => write!(f, "unexpected line: '{a}'"),
        }
    }
}

impl std::error::Error for AdvertiseError {}

impl From<git2::Error> for AdvertiseError {
    fn from(e: git2::Error) -> Self {
        AdvertiseError::Git(e)
    }
}

impl From<PktError> for AdvertiseError {
    fn from(e: PktError) -> Self {
        AdvertiseError::Pkt(e)
    }
}

/// The two services of smart HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    /// `git-upload-pack` or `git-receive-pack`.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }
}

/// The target of HEAD when it is a born symbolic ref: what v0 announces
/// as `symref=HEAD:<target>`.
pub fn head_symref(refs: &[AdvertisedRef]) -> Option<&str> {
    refs.iter().find_map(|r| match r {
        AdvertisedRef::Symbolic { name, target, .. } if name == "HEAD" => Some(target.as_str()),
        _ => None,
    })
}

/// The capability string of a v0 first line: `caps` in order, then
/// `symref=HEAD:<target>` when given, then `agent=<agent>`.
pub fn capability_string(caps: &[&str], head_symref: Option<&str>, agent: &str) -> String {
    let mut parts: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    if let Some(target) = head_symref {
        parts.push(format!("symref=HEAD:{target}"));
    }
    parts.push(format!("agent={agent}"));
    parts.join(" ")
}

/// The `# service=<svc>` pkt-line and flush that precede a v0 smart-HTTP
/// advertisement (git's http-backend adds them; upload-pack does not).
pub fn service_header(service: Service) -> Vec<u8> {
    let mut out = Vec::new();
    // Cannot fail: the line is short.
    let _ = pktline::write_line(&mut out, &format!("# service={}", service.as_str()));
    pktline::write_flush(&mut out);
    out
}

/// Write `(oid, name)` lines, the first carrying `\0<caps>`; when there
/// are none, a `capabilities^{}` line with the zero id. Ends with a flush.
fn write_v0(lines: &[(Oid, String)], caps: &str, shallow: &[Oid]) -> Result<Vec<u8>, AdvertiseError> {
    let mut out = Vec::new();
    match lines.split_first() {
        None => write_first(&mut out, ZERO_ID, "capabilities^{}", caps)?,
        Some(((oid, name), rest)) => {
            write_first(&mut out, &oid.to_string(), name, caps)?;
            for (oid, name) in rest {
                pktline::write_line(&mut out, &format!("{oid} {name}"))?;
            }
        }
    }
    // A shallow repository's boundary, as git's advertise_shallow_grafts
    // writes it (here with an LF, unlike upload-pack's shallow lines).
    for oid in shallow {
        pktline::write_line(&mut out, &format!("shallow {oid}"))?;
    }
    pktline::write_flush(&mut out);
    Ok(out)
}

fn write_first(out: &mut Vec<u8>, oid: &str, name: &str, caps: &str) -> Result<(), PktError> {
    pktline::write_data(out, format!("{oid} {name}\0{caps}\n").as_bytes())
}

/// The v0 upload-pack advertisement (without the service header): HEAD
/// first when born, the first line carrying the capabilities (`caps`,
/// `symref=HEAD:<ref>` when HEAD is symbolic and born, `agent=<agent>`),
/// `<peeled> <ref>^{}` after each annotated tag, and for a repository with
/// nothing to show `<zero-id> capabilities^{}`. Ends with a flush.
/// Matches `git upload-pack --advertise-refs --stateless-rpc` line for line.
pub fn upload_pack_v0(
    refs: &[AdvertisedRef],
    caps: &[&str],
    agent: &str,
    shallow: &[Oid],
) -> Result<Vec<u8>, AdvertiseError> {
    let mut lines = Vec::new();
    for r in refs {
        let Some(oid) = r.oid() else { continue };
        lines.push((oid, r.name().to_string()));
        if let Some(peeled) = r.peeled() {
            lines.push((peeled, format!("{}^{{}}", r.name())));
        }
    }
    let caps = capability_string(caps, head_symref(refs), agent);
    write_v0(&lines, &caps, shallow)
}

/// The v0 receive-pack advertisement (without the service header): every
/// born ref except HEAD, no peeled lines, capabilities on the first line;
/// `<zero-id> capabilities^{}` when there is no ref. Ends with a flush.
pub fn receive_pack_v0(
    refs: &[AdvertisedRef],
    caps: &[&str],
    agent: &str,
    shallow: &[Oid],
) -> Result<Vec<u8>, AdvertiseError> {
    let lines: Vec<(Oid, String)> = refs
        .iter()
        .filter(|r| r.name() != "HEAD")
        .filter_map(|r| Some((r.oid()?, r.name().to_string())))
        .collect();
    write_v0(&lines, &capability_string(caps, None, agent), shallow)
}

/// The protocol v2 advertisement: `version 2`, `agent=<agent>`, then each
/// of `caps` (e.g. `ls-refs=unborn`, `fetch=shallow filter`,
/// `object-format=sha1`) on its own line, then a flush.
pub fn capabilities_v2(caps: &[&str], agent: &str) -> Result<Vec<u8>, AdvertiseError> {
    let mut out = Vec::new();
    pktline::write_line(&mut out, "version 2")?;
    pktline::write_line(&mut out, &format!("agent={agent}"))?;
    for cap in caps {
        pktline::write_line(&mut out, cap)?;
    }
    pktline::write_flush(&mut out);
    Ok(out)
}

/// The arguments of a v2 `ls-refs` command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LsRefsArgs {
    pub symrefs: bool,
    pub peel: bool,
    pub unborn: bool,
    /// Only refs starting with one of these are listed; empty means all.
    pub prefixes: Vec<String>,
}

impl LsRefsArgs {
    /// Parse the argument lines (without trailing newlines) of an
    /// `ls-refs` command. Unknown arguments are an error, as in git.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, AdvertiseError> {
        let mut out = LsRefsArgs::default();
        for arg in args {
            let arg = arg.as_ref();
            match arg {
                "symrefs" => out.symrefs = true,
                "peel" => out.peel = true,
                "unborn" => out.unborn = true,
                _ => match arg.strip_prefix("ref-prefix ") {
                    Some(p) => out.prefixes.push(p.to_string()),
                    None => return Err(AdvertiseError::UnknownArgument(arg.to_string())),
                },
            }
        }
        Ok(out)
    }

    /// Does `name` start with one of the prefixes (or were none given)?
    pub fn matches(&self, name: &str) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }
}

/// One `ls-refs` line for `r`, or `None` when it is not listed (unborn
/// without `unborn` and `symrefs`).
fn ls_refs_line(r: &AdvertisedRef, args: &LsRefsArgs) -> Option<String> {
    let mut line = match r.oid() {
        Some(oid) => format!("{oid} {}", r.name()),
        None if args.unborn && args.symrefs => format!("unborn {}", r.name()),
        None => return None,
    };
    if args.symrefs {
        if let Some(target) = r.symref_target() {
            line.push_str(&format!(" symref-target:{target}"));
        }
    }
    if args.peel {
        if let Some(peeled) = r.peeled() {
            line.push_str(&format!(" peeled:{peeled}"));
        }
    }
    Some(line)
}

/// The `ls-refs` reply: `<oid> <ref>[ symref-target:<t>][ peeled:<oid>]`
/// for each ref matching the prefixes (in list order: HEAD first), an
/// `unborn HEAD symref-target:<t>` line for an unborn HEAD when both
/// `unborn` and `symrefs` were asked, then a flush. Matches git 2.47.
pub fn ls_refs(refs: &[AdvertisedRef], args: &LsRefsArgs) -> Result<Vec<u8>, AdvertiseError> {
    let mut out = Vec::new();
    for r in refs.iter().filter(|r| args.matches(r.name())) {
        if let Some(line) = ls_refs_line(r, args) {
            pktline::write_line(&mut out, &line)?;
        }
    }
    pktline::write_flush(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::negotiate::repo_shallow_roots;
    use crate::git::pktline::{decode_all, Packet};
    use crate::git::refs;
    use crate::git::test_fixtures::{self, git, git_io};
    use git2::Repository;
    use std::path::Path;

    /// Split a v0 advertisement into (ref lines without caps, caps).
    fn split_v0(body: &[u8]) -> (Vec<String>, Vec<String>) {
        let mut lines = Vec::new();
        let mut caps = Vec::new();
        for p in decode_all(body).expect("valid pkt-lines") {
            match p {
                Packet::Data(_) => {
                    let text = String::from_utf8(p.line().unwrap().to_vec()).unwrap();
                    match text.split_once('\0') {
                        Some((line, c)) => {
                            lines.push(line.to_string());
                            caps = c.split(' ').map(String::from).collect();
                        }
                        None => lines.push(text),
                    }
                }
                Packet::Flush => lines.push("<flush>".into()),
                other => panic!("unexpected {other:?}"),
            }
        }
        (lines, caps)
    }

    fn real(dir: &Path, service: &str) -> Vec<u8> {
        let (out, ok) = git_io(dir, &[service, "--advertise-refs", "--stateless-rpc", "."], &[], b"");
        assert!(ok);
        out
    }

    fn v2_ls_refs(dir: &Path, args: &[&str]) -> Vec<u8> {
        let mut req = Vec::new();
        pktline::write_line(&mut req, "command=ls-refs").unwrap();
        pktline::write_line(&mut req, "object-format=sha1").unwrap();
        pktline::write_delim(&mut req);
        for a in args {
            pktline::write_line(&mut req, a).unwrap();
        }
        pktline::write_flush(&mut req);
        let (out, ok) = git_io(
            dir,
            &["upload-pack", "--stateless-rpc", "."],
            &[("GIT_PROTOCOL", "version=2")],
            &req,
        );
        assert!(ok);
        out
    }

    const UPLOAD_CAPS: &[&str] = &[
        "multi_ack",
        "thin-pack",
        "side-band",
        "side-band-64k",
        "ofs-delta",
        "shallow",
        "deepen-since",
        "deepen-not",
        "deepen-relative",
        "no-progress",
        "include-tag",
        "multi_ack_detailed",
        "no-done",
        "object-format=sha1",
    ];
    const RECEIVE_CAPS: &[&str] = &[
        "report-status",
        "report-status-v2",
        "delete-refs",
        "side-band-64k",
        "quiet",
        "atomic",
        "ofs-delta",
        "object-format=sha1",
    ];

    /// Compare our v0 output with git's: ref lines exactly, and the caps as
    /// sets once git's agent is replaced by ours.
    fn check_v0(dir: &Path, service: Service) {
        let repo = Repository::open(dir).unwrap();
        let refs = refs::read(repo.path()).unwrap().list;
        let agent = "gitpat/test";
        let (ours, theirs) = match service {
            Service::UploadPack => (
                upload_pack_v0(&refs, UPLOAD_CAPS, agent, &repo_shallow_roots(&repo)).unwrap(),
                real(dir, "upload-pack"),
            ),
            Service::ReceivePack => (
                receive_pack_v0(&refs, RECEIVE_CAPS, agent, &repo_shallow_roots(&repo)).unwrap(),
                real(dir, "receive-pack"),
            ),
        };
        let (our_lines, mut our_caps) = split_v0(&ours);
        let (git_lines, git_caps) = split_v0(&theirs);
        if our_lines != git_lines {
            let at = our_lines.iter().zip(&git_lines).position(|(a, b)| a != b).unwrap_or(0);
            let window = |l: &[String]| l[at.saturating_sub(1)..(at + 3).min(l.len())].to_vec();
            panic!(
                "{service:?} advertisement differs at line {at}: ours {:?}, git's {:?} ({} and {} lines)",
                window(&our_lines),
                window(&git_lines),
                our_lines.len(),
                git_lines.len()
            );
        }
        let mut git_caps: Vec<String> = git_caps
            .into_iter()
            .map(|c| {
                if c.starts_with("agent=") {
                    format!("agent={agent}")
                } else {
                    c
                }
            })
            .collect();
        our_caps.sort();
        git_caps.sort();
        assert_eq!(our_caps, git_caps);
        // With the caps line normalised, the bytes agree too.
        let caps = capability_string(UPLOAD_CAPS, head_symref(&refs), agent);
        if service == Service::UploadPack {
            assert_eq!(ours.len(), theirs.len() - git_caps_len(&theirs) + caps.len());
        }
    }

    fn git_caps_len(body: &[u8]) -> usize {
        let (p, _) = pktline::decode(body).unwrap().unwrap();
        let line = p.line().unwrap();
        let nul = line.iter().position(|&b| b == 0).unwrap();
        line.len() - nul - 1
    }

    #[test]
    fn upload_pack_v0_matches_git_on_rich_repo() {
        let dir = test_fixtures::rich_repo();
        check_v0(dir.path(), Service::UploadPack);
        let repo = Repository::open(dir.path()).unwrap();
        let refs = refs::read(repo.path()).unwrap().list;
        assert_eq!(head_symref(&refs), Some("refs/heads/dev"));
        let (lines, _) = split_v0(&upload_pack_v0(&refs, &[], "a", &[]).unwrap());
        assert!(lines[0].ends_with(" HEAD"));
        assert!(lines.iter().any(|l| l.ends_with("refs/tags/nested^{}")));
    }

    #[test]
    fn receive_pack_v0_matches_git_on_rich_repo() {
        let dir = test_fixtures::rich_repo();
        check_v0(dir.path(), Service::ReceivePack);
    }

    #[test]
    fn v0_matches_git_on_empty_repo() {
        // git >= 2.41 sends `capabilities^{}` from upload-pack on an empty
        // repository; git 2.39 (/usr/bin/git) sends a bare flush there.
        let dir = test_fixtures::empty_repo();
        check_v0(dir.path(), Service::UploadPack);
        check_v0(dir.path(), Service::ReceivePack);
        let repo = Repository::open(dir.path()).unwrap();
        let refs = refs::read(repo.path()).unwrap().list;
        assert_eq!(
            refs,
            vec![AdvertisedRef::Unborn {
                name: "HEAD".into(),
                target: "refs/heads/main".into()
            }]
        );
        let body = upload_pack_v0(&refs, &["ofs-delta"], "x/1", &[]).unwrap();
        let expected = format!("{ZERO_ID} capabilities^{{}}\0ofs-delta agent=x/1\n");
        let mut want = Vec::new();
        pktline::write_data(&mut want, expected.as_bytes()).unwrap();
        pktline::write_flush(&mut want);
        assert_eq!(body, want);
    }

    #[test]
    fn v0_matches_git_with_detached_head_and_unborn_head_with_refs() {
        let dir = test_fixtures::rich_repo();
        let d = dir.path();
        git(d, &["checkout", "-q", "--detach", "HEAD~1"]);
        check_v0(d, Service::UploadPack);
        git(d, &["symbolic-ref", "HEAD", "refs/heads/nothing"]);
        check_v0(d, Service::UploadPack);
        check_v0(d, Service::ReceivePack);
    }

    #[test]
    fn v0_matches_git_on_a_shallow_repository() {
        let src = test_fixtures::rich_repo();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", src.path().display());
        git(
            dir.path(),
            &["clone", "-q", "--bare", "--depth", "1", "--no-single-branch", &url, "."],
        );
        assert!(!repo_shallow_roots(&Repository::open(dir.path()).unwrap()).is_empty());
        check_v0(dir.path(), Service::UploadPack);
        check_v0(dir.path(), Service::ReceivePack);
    }

    #[test]
    fn service_header_bytes() {
        assert_eq!(
            service_header(Service::UploadPack),
            b"001e# service=git-upload-pack\n0000"
        );
        assert_eq!(
            service_header(Service::ReceivePack),
            b"001f# service=git-receive-pack\n0000"
        );
    }

    #[test]
    fn capabilities_v2_shape_matches_git() {
        let dir = test_fixtures::empty_repo();
        let theirs = {
            let (out, ok) = git_io(
                dir.path(),
                &["upload-pack", "--advertise-refs", "--stateless-rpc", "."],
                &[("GIT_PROTOCOL", "version=2")],
                b"",
            );
            assert!(ok);
            out
        };
        let packets = decode_all(&theirs).unwrap();
        let lines: Vec<String> = packets
            .iter()
            .filter_map(|p| p.line())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let agent = lines[1].strip_prefix("agent=").unwrap().to_string();
        let caps: Vec<&str> = lines[2..].iter().map(String::as_str).collect();
        assert_eq!(capabilities_v2(&caps, &agent).unwrap(), theirs);
    }

    #[test]
    fn ls_refs_args_parse() {
        let args = LsRefsArgs::parse(&["peel", "symrefs", "unborn", "ref-prefix refs/tags/"]).unwrap();
        assert!(args.peel && args.symrefs && args.unborn);
        assert_eq!(args.prefixes, vec!["refs/tags/".to_string()]);
        assert!(matches!(
            LsRefsArgs::parse(&["bogus"]),
            Err(AdvertiseError::UnknownArgument(_))
        ));
    }

    /// Every advertisement of `dir` against git's: v0 for both services
    /// and `ls-refs` with each kind of argument.
    fn check_all(dir: &Path, state: &str) {
        check_v0(dir, Service::UploadPack);
        check_v0(dir, Service::ReceivePack);
        let refs = refs::read(dir).unwrap().list;
        for args in [
            &["symrefs", "peel", "unborn"][..],
            &["peel", "ref-prefix refs/tags/a01", "ref-prefix HEAD"],
            &["symrefs", "ref-prefix refs/heads/"],
        ] {
            let ours = ls_refs(&refs, &LsRefsArgs::parse(args).unwrap()).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&v2_ls_refs(dir, args)),
                "{state}: ls-refs {args:?}"
            );
        }
    }

    #[test]
    fn advertisements_match_git_on_loose_packed_and_mixed_refs() {
        let repo = test_fixtures::tagged_repo(300);
        let d = repo.path();
        check_all(d, "loose");
        git(d, &["pack-refs", "--all"]);
        let packed = std::fs::read_to_string(d.join("packed-refs")).unwrap();
        assert!(packed.starts_with("# pack-refs with: peeled fully-peeled sorted"));
        assert!(packed.contains("\n^"), "peeled lines");
        check_all(d, "packed, fully peeled");
        let (_, body) = packed.split_once('\n').unwrap();
        std::fs::write(d.join("packed-refs"), body).unwrap();
        check_all(d, "packed, no traits");
        std::fs::write(d.join("packed-refs"), format!("# pack-refs with: peeled \n{body}")).unwrap();
        check_all(d, "packed, tags peeled");
        std::fs::write(d.join("packed-refs"), &packed).unwrap();
        // Loose refs over packed ones: a new tag, a packed tag moved, a
        // packed tag hidden by a broken loose file, a ref to a missing
        // object, a ref with a name git refuses.
        git(d, &["tag", "-a", "-m", "late", "late", "main~3"]);
        let a6 = git(d, &["rev-parse", "refs/tags/a0006"]);
        git(d, &["update-ref", "refs/tags/a0005", &a6]);
        std::fs::write(d.join("refs/tags/a0007"), "not an id\n").unwrap();
        std::fs::write(d.join("refs/heads/missing"), format!("{}\n", "12".repeat(20))).unwrap();
        std::fs::write(d.join("refs/heads/bad..name"), format!("{a6}\n")).unwrap();
        git(d, &["symbolic-ref", "refs/heads/dangling", "refs/heads/nothing"]);
        check_all(d, "mixed");
        let read = refs::read(d).unwrap();
        let zero = |name: &str| {
            read.list
                .iter()
                .any(|r| r.name() == name && r.oid() == Some(Oid::zero()))
        };
        assert!(
            zero("refs/tags/a0007") && zero("refs/heads/bad..name"),
            "broken refs shown as git shows them"
        );
        assert!(!read.tips.contains(&Oid::zero()), "the zero id is no tip");
    }

    #[test]
    fn ls_refs_matches_git() {
        let rich = test_fixtures::rich_repo();
        let empty = test_fixtures::empty_repo();
        let cases: &[&[&str]] = &[
            &[],
            &["peel"],
            &["symrefs"],
            &["symrefs", "peel", "unborn"],
            &["unborn"],
            &["peel", "symrefs", "ref-prefix refs/heads/", "ref-prefix HEAD"],
            &["ref-prefix refs/tags/n", "peel"],
            &["ref-prefix refs/nothing"],
        ];
        for dir in [rich.path(), empty.path()] {
            let repo = Repository::open(dir).unwrap();
            let refs = refs::read(repo.path()).unwrap().list;
            for args in cases {
                let parsed = LsRefsArgs::parse(args).unwrap();
                let ours = ls_refs(&refs, &parsed).unwrap();
                let theirs = v2_ls_refs(dir, args);
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs),
                    "args {args:?}"
                );
            }
        }
    }
}
