//! Leaked-token push protection, the repository side: finds the strings of
//! this instance's token format in what a push adds, for the service layer
//! to look up by digest (`service::leaks`). Nothing here knows tokens'
//! rows: a [`Candidate`] is only a string of the right shape.
//!
//! What a push adds is the objects of its quarantine (`objects/incoming-*`,
//! one pack with either engine) that the repository does not hold already
//! (a thin pack's bases, which index-pack or libgit2's indexer copied in,
//! and objects a client sent again, are not new). Of those, blobs of at
//! most [`MAX_BLOB_SIZE`] bytes and commit and tag objects (their messages;
//! at most [`MAX_MESSAGE_SIZE`]) are read, one at a time per worker thread,
//! and searched for each prefix with `memchr::memmem`; only a hit is
//! checked further (exactly [`TokenFormat::len`] token characters after
//! the prefix, and no token character on either side). Where a blob was
//! found (its path and the commit that brought it) is worked out only when
//! something was found ([`locate`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::{ObjectType, Odb, Oid, Repository};
use memchr::memmem;

/// Blobs larger than this are not read (as GitLab's secret push protection).
pub const MAX_BLOB_SIZE: usize = 1 << 20;
/// Commit and tag objects larger than this are not read (git accepts any
/// size; a message this long is not a message).
pub const MAX_MESSAGE_SIZE: usize = 32 << 20;
/// The most distinct candidates one push reports; past it the rest are
/// not looked at (each costs a database lookup).
pub const MAX_CANDIDATES: usize = 1000;

/// Can `b` be part of a token (`[A-Za-z0-9_-]`)?
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The token format searched for: one of the prefixes, then exactly `len`
/// token characters, with no token character just before or just after.
#[derive(Debug, Clone)]
pub struct TokenFormat {
    finders: Vec<memmem::Finder<'static>>,
    len: usize,
}

impl TokenFormat {
    /// The format of `prefixes` (empty ones dropped: a format without a
    /// prefix would match every word of `len` characters) and `len`
    /// characters after them.
    pub fn new<S: AsRef<str>>(prefixes: &[S], len: usize) -> TokenFormat {
        let mut seen: Vec<&str> = Vec::new();
        for p in prefixes.iter().map(AsRef::as_ref) {
            if !p.is_empty() && !seen.contains(&p) {
                seen.push(p);
            }
        }
        TokenFormat {
            finders: seen
                .iter()
                .map(|p| memmem::Finder::new(p.as_bytes()).into_owned())
                .collect(),
            len,
        }
    }

    /// No prefix: nothing can match.
    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every string of the format in `data`, in order, repeats included.
    pub fn find_all(&self, data: &[u8], out: &mut Vec<Candidate>) {
        for f in &self.finders {
            let plen = f.needle().len();
            for at in f.find_iter(data) {
                // A token character just before: the prefix is inside a
                // longer word (a prefix is made of token characters).
                if at > 0 && is_token_byte(data[at - 1]) {
                    continue;
                }
                let start = at + plen;
                let end = start + self.len;
                if end > data.len() || !data[start..end].iter().all(|&b| is_token_byte(b)) {
                    continue;
                }
                if data.get(end).is_some_and(|&b| is_token_byte(b)) {
                    continue;
                }
                // ASCII by construction.
                let s = String::from_utf8_lossy(&data[at..end]).into_owned();
                out.push(Candidate(s));
            }
        }
    }
}

/// A string of the token format: perhaps a token, perhaps not. Its `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Candidate(String);

impl Candidate {
    /// The string, to digest it; never to show it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Candidate(<redacted>)")
    }
}

/// Where a candidate was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A file: its path, and the new commit that brought it.
    File { path: String, commit: Oid },
    /// The message (or headers) of a new commit.
    CommitMessage(Oid),
    /// The message of a new annotated tag.
    TagMessage { name: String, tag: Oid },
    /// A new object no pushed commit reaches (a lone blob, a blob a tag
    /// points at).
    Object(Oid),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File { path, commit } => write!(f, "in {path} at commit {commit}"),
            Place::CommitMessage(c) => write!(f, "in the message of commit {c}"),
            Place::TagMessage { name, tag } => write!(f, "in the message of tag {name} ({tag})"),
            Place::Object(o) => write!(f, "in object {o}, which no pushed commit reaches"),
        }
    }
}

/// A candidate and the new object it is in.
#[derive(Debug, Clone)]
pub struct Finding {
    pub candidate: Candidate,
    pub object: Oid,
    pub kind: ObjectType,
}

/// The quarantine's pack indexes.
fn indexes(quarantine: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(quarantine.join("pack"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    v.sort();
    Ok(v)
}

/// The object database of a folder of objects alone (no alternates but
/// its own).
fn odb_of(objects: &Path) -> Result<Odb<'static>, git2::Error> {
    let odb = Odb::new()?;
    let dir = objects
        .to_str()
        .ok_or_else(|| git2::Error::from_str("the objects folder path is not UTF-8"))?;
    odb.add_disk_alternate(dir)?;
    Ok(odb)
}

/// Searches what the quarantine at `quarantine` adds to the repository
/// whose objects are at `objects`: each distinct candidate once, with the
/// first object it was found in (at most [`MAX_CANDIDATES`]). `threads`
/// workers read objects in parallel, each one object at a time.
pub fn scan(
    format: &TokenFormat,
    objects: &Path,
    quarantine: &Path,
    threads: usize,
) -> Result<Vec<Finding>, git2::Error> {
    if format.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<Oid> = Vec::new();
    for idx in indexes(quarantine).map_err(|e| git2::Error::from_str(&e.to_string()))? {
        ids.extend(super::intake::idx_object_ids(&idx).map_err(|e| git2::Error::from_str(&e.to_string()))?);
    }
    let next = Mutex::new(ids.chunks(256));
    let found: Mutex<(Vec<Finding>, HashSet<Candidate>)> = Mutex::new((Vec::new(), HashSet::new()));
    let failed: Mutex<Option<git2::Error>> = Mutex::new(None);
    let work = || -> Result<(), git2::Error> {
        let here = odb_of(objects)?;
        let incoming = odb_of(quarantine)?;
        let mut hits = Vec::new();
        loop {
            let Some(batch) = next.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                return Ok(());
            };
            for &id in batch {
                // A thin pack's base, or an object sent again: not new.
                if here.exists(id) {
                    continue;
                }
                let (size, kind) = incoming.read_header(id)?;
                let wanted = match kind {
                    ObjectType::Blob => size <= MAX_BLOB_SIZE,
                    ObjectType::Commit | ObjectType::Tag => size <= MAX_MESSAGE_SIZE,
                    _ => false,
                };
                if !wanted {
                    continue;
                }
                let obj = incoming.read(id)?;
                hits.clear();
                format.find_all(obj.data(), &mut hits);
                if hits.is_empty() {
                    continue;
                }
                let mut f = found.lock().unwrap_or_else(|p| p.into_inner());
                for c in hits.drain(..) {
                    if f.1.len() >= MAX_CANDIDATES {
                        break;
                    }
                    if f.1.insert(c.clone()) {
                        f.0.push(Finding {
                            candidate: c,
                            object: id,
                            kind,
                        });
                    }
                }
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                if let Err(e) = work() {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(found.into_inner().unwrap_or_else(|p| p.into_inner()).0)
}

/// The most commits [`locate`] walks to find where a blob came in.
const MAX_LOCATE_COMMITS: usize = 100_000;

/// Where each finding is, for the pusher's message: a blob's path and the
/// first new commit (oldest first, from `tips`, not reachable from a ref
/// of `repo`) whose change against its first parent adds it; a commit or
/// tag itself. `repo` must see the quarantine.
pub fn locate(repo: &Repository, findings: &[Finding], tips: &[Oid]) -> Vec<Place> {
    let mut places: Vec<Option<Place>> = findings
        .iter()
        .map(|f| match f.kind {
            ObjectType::Commit => Some(Place::CommitMessage(f.object)),
            ObjectType::Tag => Some(Place::TagMessage {
                name: repo
                    .find_tag(f.object)
                    .ok()
                    .and_then(|t| t.name().map(str::to_string))
                    .unwrap_or_default(),
                tag: f.object,
            }),
            _ => None,
        })
        .collect();
    let mut wanted: HashMap<Oid, Vec<usize>> = HashMap::new();
    for (i, f) in findings.iter().enumerate() {
        if places[i].is_none() {
            wanted.entry(f.object).or_default().push(i);
        }
    }
    if !wanted.is_empty() {
        if let Err(e) = walk_for_blobs(repo, tips, &mut wanted, &mut places) {
            tracing::warn!("cannot tell where a leaked token is: {e}");
        }
    }
    places
        .into_iter()
        .zip(findings)
        .map(|(p, f)| p.unwrap_or(Place::Object(f.object)))
        .collect()
}

fn walk_for_blobs(
    repo: &Repository,
    tips: &[Oid],
    wanted: &mut HashMap<Oid, Vec<usize>>,
    places: &mut [Option<Place>],
) -> Result<(), git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    let mut pushed = false;
    for t in tips {
        if let Ok(c) = repo.find_object(*t, None).and_then(|o| o.peel_to_commit()) {
            walk.push(c.id())?;
            pushed = true;
        }
    }
    if !pushed {
        return Ok(());
    }
    for r in repo.references()?.flatten() {
        if let Ok(c) = r.peel_to_commit() {
            walk.hide(c.id())?;
        }
    }
    for id in walk.take(MAX_LOCATE_COMMITS) {
        let commit = repo.find_commit(id?)?;
        let tree = commit.tree()?;
        let parent = match commit.parents().next() {
            Some(p) => Some(p.tree()?),
            None => None,
        };
        let diff = repo.diff_tree_to_tree(parent.as_ref(), Some(&tree), None)?;
        for d in diff.deltas() {
            let new = d.new_file();
            if let Some(idxs) = wanted.remove(&new.id()) {
                let path = new.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                for i in idxs {
                    places[i] = Some(Place::File {
                        path: path.clone(),
                        commit: commit.id(),
                    });
                }
            }
        }
        if wanted.is_empty() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T20: &str = "abcdefghij_-KLMNOP12";

    fn found(format: &TokenFormat, data: &str) -> Vec<String> {
        let mut out = Vec::new();
        format.find_all(data.as_bytes(), &mut out);
        out.into_iter().map(|c| c.expose().to_string()).collect()
    }

    #[test]
    fn only_the_exact_format_bounded_by_other_characters_matches() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let tok = format!("glpat-{T20}");
        // (text, what is found)
        let cases: Vec<(String, Vec<String>)> = vec![
            (tok.clone(), vec![tok.clone()]),
            (format!("token = \"{tok}\"\n"), vec![tok.clone()]),
            (format!("https://oauth2:{tok}@example.com/x.git"), vec![tok.clone()]),
            (format!("{tok},{tok}"), vec![tok.clone(), tok.clone()]),
            // 19 and 21 characters: not the format.
            (format!("glpat-{}", &T20[..19]), vec![]),
            (format!("glpat-{T20}x"), vec![]),
            (format!("glpat-{T20}-"), vec![]),
            // inside a longer word
            (format!("x{tok}"), vec![]),
            (format!("_{tok}"), vec![]),
            // a character outside the alphabet within the 20
            (format!("glpat-{}.{}", &T20[..10], &T20[11..]), vec![]),
            (format!("glpat-{}\u{e9}", &T20[..18]), vec![]),
            // cut at the end of the object
            (format!("glpat-{}", &T20[..5]), vec![]),
            ("glpat-".into(), vec![]),
            ("".into(), vec![]),
            // prefix case matters
            (format!("GLPAT-{T20}"), vec![]),
            // a hit that fails does not hide the next one
            (format!("glpat-glpat-{T20}"), vec![]),
            (format!("glpat-short {tok}"), vec![tok.clone()]),
            // non-ASCII around it is a boundary
            (format!("\u{e9}{tok}\u{e9}"), vec![tok.clone()]),
        ];
        for (text, want) in cases {
            assert_eq!(found(&f, &text), want, "{text:?}");
        }
    }

    #[test]
    fn the_configured_prefix_and_glpat_both_count() {
        let f = TokenFormat::new(&["mypfx-", "glpat-", "glpat-", ""], 20);
        assert_eq!(
            found(&f, &format!("a mypfx-{T20} b glpat-{T20} c xmypfx-{T20}")),
            vec![format!("mypfx-{T20}"), format!("glpat-{T20}")]
        );
        // Only empty prefixes: nothing can match (every 20-letter word would).
        let none = TokenFormat::new(&[""], 20);
        assert!(none.is_empty());
        assert!(found(&none, T20).is_empty());
    }

    #[test]
    fn prefixes_at_the_edges_of_the_object() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let tok = format!("glpat-{T20}");
        // at the very start and the very end, with nothing around
        assert_eq!(found(&f, &format!("{tok}\nrest")), vec![tok.clone()]);
        assert_eq!(found(&f, &format!("start\n{tok}")), vec![tok.clone()]);
        // binary neighbours
        let mut data = vec![0u8, 0xff];
        data.extend_from_slice(tok.as_bytes());
        data.push(0);
        let mut out = Vec::new();
        f.find_all(&data, &mut out);
        assert_eq!(out.len(), 1);
        // the prefix split by the end of the object is no match
        assert!(found(&f, "xx glpa").is_empty());
    }

    #[test]
    fn candidates_do_not_show_in_debug() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let mut out = Vec::new();
        f.find_all(format!("glpat-{T20}").as_bytes(), &mut out);
        assert_eq!(format!("{out:?}"), "[Candidate(<redacted>)]");
    }

    #[test]
    fn places_say_where_and_never_what() {
        let c = Oid::from_str(&"1".repeat(40)).unwrap();
        assert_eq!(
            Place::File {
                path: "a/b.txt".into(),
                commit: c
            }
            .to_string(),
            format!("in a/b.txt at commit {c}")
        );
        assert_eq!(
            Place::CommitMessage(c).to_string(),
            format!("in the message of commit {c}")
        );
    }

    use crate::git::test_fixtures::{git, git_io};

    /// A repository with one commit, and a quarantine holding a pack of a
    /// second commit that adds `secret.txt` and says `message`.
    fn pushed(secret: &str, message: &str) -> (tempfile::TempDir, tempfile::TempDir, Oid, PathBuf) {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        git(s, &["init", "-q", "-b", "main", "."]);
        std::fs::write(s.join("README"), "hello\n").unwrap();
        git(s, &["add", "README"]);
        git(s, &["commit", "-q", "-m", "first"]);
        let server = tempfile::tempdir().unwrap();
        git(server.path(), &["clone", "-q", "--bare", s.to_str().unwrap(), "."]);
        std::fs::create_dir_all(s.join("dir")).unwrap();
        std::fs::write(s.join("dir/secret.txt"), secret).unwrap();
        std::fs::write(s.join("README"), "hello again\n").unwrap();
        git(s, &["add", "-A"]);
        git(s, &["commit", "-q", "-m", message]);
        let head = Oid::from_str(git(s, &["rev-parse", "HEAD"]).trim()).unwrap();
        let (pack, ok) = git_io(
            s,
            &["pack-objects", "--revs", "--stdout", "-q", "--thin"],
            &[],
            format!("{head}\n^{head}~1\n").as_bytes(),
        );
        assert!(ok);
        let q = server.path().join("objects/incoming-test");
        std::fs::create_dir_all(q.join("pack")).unwrap();
        let out = std::process::Command::new("git")
            .args(["index-pack", "--stdin", "--fix-thin"])
            .current_dir(server.path())
            .env("GIT_DIR", server.path())
            .env("GIT_OBJECT_DIRECTORY", &q)
            .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", server.path().join("objects"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&pack)?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success());
        (src, server, head, q)
    }

    #[test]
    fn a_quarantine_is_scanned_and_its_findings_located() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let tok = format!("glpat-{T20}");
        let (_src, server, head, q) = pushed(&format!("key: {tok}\n"), &format!("add {tok} again"));
        for threads in [1, 3] {
            let found = scan(&f, &server.path().join("objects"), &q, threads).unwrap();
            // The same string twice: once, in the first object seen.
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].candidate.expose(), tok);
        }
        let repo = Repository::open_bare(server.path()).unwrap();
        repo.odb().unwrap().add_disk_alternate(q.to_str().unwrap()).unwrap();
        let blob = repo.revparse_single(&format!("{head}:dir/secret.txt")).unwrap().id();
        let findings = vec![
            Finding {
                candidate: Candidate(tok.clone()),
                object: blob,
                kind: ObjectType::Blob,
            },
            Finding {
                candidate: Candidate(tok.clone()),
                object: head,
                kind: ObjectType::Commit,
            },
        ];
        assert_eq!(
            locate(&repo, &findings, &[head]),
            vec![
                Place::File {
                    path: "dir/secret.txt".into(),
                    commit: head
                },
                Place::CommitMessage(head)
            ]
        );
    }

    #[test]
    fn objects_the_repository_has_are_not_new() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let tok = format!("glpat-{T20}");
        // The token sits in README in the repository already; the push
        // changes README a little (a thin pack: README's old blob is its
        // base, copied into the quarantine) and adds nothing of the format.
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        git(s, &["init", "-q", "-b", "main", "."]);
        let lines: Vec<String> = (0..400)
            .map(|i| format!("line {i} of some text that stays\n"))
            .collect();
        let big = format!("{}key: {tok}\n{}", lines[..200].concat(), lines[200..].concat());
        std::fs::write(s.join("README"), &big).unwrap();
        git(s, &["add", "README"]);
        git(s, &["commit", "-q", "-m", "first"]);
        let server = tempfile::tempdir().unwrap();
        git(server.path(), &["clone", "-q", "--bare", s.to_str().unwrap(), "."]);
        std::fs::write(s.join("README"), lines.concat()).unwrap();
        git(s, &["commit", "-q", "-am", "second"]);
        let head = git(s, &["rev-parse", "HEAD"]);
        let (pack, ok) = git_io(
            s,
            &["pack-objects", "--revs", "--stdout", "-q", "--thin"],
            &[],
            format!("{}\n^{}~1\n", head.trim(), head.trim()).as_bytes(),
        );
        assert!(ok);
        let q = server.path().join("objects/incoming-test");
        std::fs::create_dir_all(q.join("pack")).unwrap();
        let mut child = std::process::Command::new("git")
            .args(["index-pack", "--stdin", "--fix-thin"])
            .env("GIT_DIR", server.path())
            .env("GIT_OBJECT_DIRECTORY", &q)
            .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", server.path().join("objects"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&pack).unwrap();
        }
        assert!(child.wait().unwrap().success());
        let q_odb = odb_of(&q).unwrap();
        let mut in_q = 0;
        q_odb
            .foreach(|_| {
                in_q += 1;
                true
            })
            .unwrap();
        assert!(in_q >= 4, "the base was not copied in: {in_q} objects");
        assert!(scan(&f, &server.path().join("objects"), &q, 2).unwrap().is_empty());
    }
}
