//! A pack's entries followed as its bytes stream past, in bounded memory:
//! each entry's header (type, size), and for deltas the size of the object
//! they make (the second number of the delta's own header). The libgit2
//! engine puts this in front of its indexer, which holds each object whole
//! in memory, to refuse an object over a limit before it is inflated.
//!
//! Finding where an entry ends means inflating its zlib stream; the output
//! is thrown away but for a delta's first bytes.

use flate2::{Decompress, FlushDecompress, Status};

const OBJ_OFS_DELTA: u8 = 6;
const OBJ_REF_DELTA: u8 = 7;

#[derive(Debug)]
enum State {
    /// The 12-byte header: `PACK`, version, count.
    Header { got: Vec<u8> },
    /// The type-and-size varint of an entry.
    EntryHeader {
        kind: u8,
        size: u64,
        shift: u32,
        first: bool,
    },
    /// An offset delta's base offset (a varint).
    OfsBase { size: u64 },
    /// A ref delta's 20-byte base id.
    RefBase { left: usize, size: u64 },
    /// The entry's zlib stream; for a delta, its first bytes until the
    /// size of the object it makes is known.
    Data { size: u64, head: Vec<u8>, checked: bool },
    /// The 20-byte checksum, and nothing after it matters.
    Trailer,
}

/// Follows one pack.
pub struct PackStream {
    max_object: u64,
    state: State,
    entries_left: u32,
    inflate: Decompress,
    scratch: Box<[u8]>,
}

/// Why a pack was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackStreamError {
    TooBig { size: u64, max: u64 },
    Malformed(String),
}

impl std::fmt::Display for PackStreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackStreamError::TooBig { size, max } => write!(
                f,
                "an object of {size} bytes is larger than the libgit2 engine takes ({max} bytes); \
                 the git engine (pack_engine = git) has no such limit"
            ),
            PackStreamError::Malformed(why) => write!(f, "malformed pack: {why}"),
        }
    }
}

impl std::error::Error for PackStreamError {}

/// Reads the size varint at the start of a delta (base size, then result
/// size); `None` while it is incomplete.
fn delta_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// An object of `size` bytes may pass a stream limited to `max`.
fn within(size: u64, max: u64) -> Result<(), PackStreamError> {
    if size > max {
        return Err(PackStreamError::TooBig { size, max });
    }
    Ok(())
}

impl PackStream {
    pub fn new(max_object: u64) -> PackStream {
        PackStream {
            max_object,
            state: State::Header { got: Vec::new() },
            entries_left: 0,
            inflate: Decompress::new(true),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
        }
    }

    fn next_entry(&mut self) -> State {
        if self.entries_left == 0 {
            return State::Trailer;
        }
        self.entries_left -= 1;
        State::EntryHeader {
            kind: 0,
            size: 0,
            shift: 0,
            first: true,
        }
    }

    /// True once every entry has been seen.
    pub fn finished(&self) -> bool {
        matches!(self.state, State::Trailer)
    }

    /// Takes the next bytes of the pack.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), PackStreamError> {
        let bad = |why: &str| Err(PackStreamError::Malformed(why.to_string()));
        while !data.is_empty() {
            match &mut self.state {
                State::Header { got } => {
                    let n = (12 - got.len()).min(data.len());
                    got.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if got.len() == 12 {
                        if &got[..4] != b"PACK" || !matches!(got[4..8], [0, 0, 0, 2] | [0, 0, 0, 3]) {
                            return bad("no PACK version 2 or 3 header");
                        }
                        self.entries_left = u32::from_be_bytes([got[8], got[9], got[10], got[11]]);
                        self.state = self.next_entry();
                    }
                }
                State::EntryHeader {
                    kind,
                    size,
                    shift,
                    first,
                } => {
                    let b = data[0];
                    data = &data[1..];
                    if *first {
                        *kind = (b >> 4) & 7;
                        *size = u64::from(b & 0x0f);
                        *shift = 4;
                        *first = false;
                    } else {
                        if *shift > 57 {
                            return bad("an entry's size does not fit 64 bits");
                        }
                        *size |= u64::from(b & 0x7f) << *shift;
                        *shift += 7;
                    }
                    if b & 0x80 == 0 {
                        let (kind, size) = (*kind, *size);
                        if !matches!(kind, 1..=4 | OBJ_OFS_DELTA | OBJ_REF_DELTA) {
                            return bad("an entry of unknown type");
                        }
                        if kind < OBJ_OFS_DELTA {
                            within(size, self.max_object)?;
                        }
                        self.inflate.reset(true);
                        self.state = match kind {
                            OBJ_OFS_DELTA => State::OfsBase { size },
                            OBJ_REF_DELTA => State::RefBase { left: 20, size },
                            _ => State::Data {
                                size,
                                head: Vec::new(),
                                checked: true,
                            },
                        };
                    }
                }
                State::OfsBase { size } => {
                    let b = data[0];
                    data = &data[1..];
                    if b & 0x80 == 0 {
                        self.state = State::Data {
                            size: *size,
                            head: Vec::new(),
                            checked: false,
                        };
                    }
                }
                State::RefBase { left, size } => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.state = State::Data {
                            size: *size,
                            head: Vec::new(),
                            checked: false,
                        };
                    }
                }
                State::Data { size, head, checked } => {
                    let before_in = self.inflate.total_in();
                    let before_out = self.inflate.total_out();
                    let status = self
                        .inflate
                        .decompress(data, &mut self.scratch, FlushDecompress::None)
                        .map_err(|e| PackStreamError::Malformed(format!("bad zlib data: {e}")))?;
                    let used = (self.inflate.total_in() - before_in) as usize;
                    let made = (self.inflate.total_out() - before_out) as usize;
                    data = &data[used..];
                    if self.inflate.total_out() > *size {
                        return bad("an entry inflates past its size");
                    }
                    if !*checked {
                        let take = made.min(20 - head.len());
                        head.extend_from_slice(&self.scratch[..take]);
                        let result = delta_varint(head).and_then(|(_, n)| delta_varint(&head[n..]));
                        if let Some((result, _)) = result {
                            *checked = true;
                            within(result, self.max_object)?;
                        } else if head.len() >= 20 {
                            return bad("a delta without its sizes");
                        }
                    }
                    match status {
                        Status::StreamEnd => {
                            if self.inflate.total_out() != *size || !*checked {
                                return bad("an entry's data is shorter than its size");
                            }
                            self.state = self.next_entry();
                        }
                        Status::Ok | Status::BufError => {
                            if used == 0 && made == 0 {
                                return bad("zlib data that goes nowhere");
                            }
                        }
                    }
                }
                State::Trailer => return Ok(()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_fixtures::{git, git_io};

    /// A repository with a 1 MiB blob and a second version of it.
    fn two_versions() -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "."]);
        let mut text = String::new();
        for i in 0..80_000 {
            text.push_str(&format!("line {i:08}\n"));
        }
        text.truncate(1 << 20);
        std::fs::write(dir.path().join("f"), &text).unwrap();
        git(dir.path(), &["add", "f"]);
        git(dir.path(), &["commit", "-q", "-m", "one"]);
        let one = git(dir.path(), &["rev-parse", "HEAD"]);
        text.push_str("changed\n");
        std::fs::write(dir.path().join("f"), &text).unwrap();
        git(dir.path(), &["commit", "-q", "-am", "two"]);
        let two = git(dir.path(), &["rev-parse", "HEAD"]);
        (dir, one, two)
    }

    fn pack(dir: &std::path::Path, args: &[&str], revs: &str) -> Vec<u8> {
        let mut a = vec!["pack-objects", "--stdout", "-q", "--revs"];
        a.extend_from_slice(args);
        let (out, ok) = git_io(dir, &a, &[], revs.as_bytes());
        assert!(ok);
        out
    }

    fn follow(pack: &[u8], max: u64, chunk: usize) -> Result<bool, PackStreamError> {
        let mut s = PackStream::new(max);
        for c in pack.chunks(chunk) {
            s.feed(c)?;
        }
        Ok(s.finished())
    }

    #[test]
    fn follows_whole_packs_in_any_chunking() {
        let (dir, _, two) = two_versions();
        for args in [&[][..], &["--no-delta-base-offset"][..]] {
            let p = pack(dir.path(), args, &format!("{two}\n"));
            for chunk in [1, 7, 4096, p.len()] {
                assert_eq!(follow(&p, 2 << 20, chunk), Ok(true), "{args:?} in chunks of {chunk}");
            }
        }
    }

    #[test]
    fn refuses_an_object_over_the_limit_from_its_header_or_its_delta() {
        let (dir, one, two) = two_versions();
        let whole = pack(dir.path(), &[], &format!("{two}\n"));
        assert!(matches!(
            follow(&whole, 512 << 10, 4096),
            Err(PackStreamError::TooBig { size, .. }) if size >= 1 << 20
        ));
        // A thin pack holds only a small delta that makes a 1 MiB blob.
        let thin = pack(dir.path(), &["--thin"], &format!("{two}\n^{one}\n"));
        assert!(thin.len() < 4096, "the thin pack is {} bytes", thin.len());
        assert_eq!(follow(&thin, 2 << 20, 64), Ok(true));
        assert!(matches!(
            follow(&thin, 512 << 10, 64),
            Err(PackStreamError::TooBig { size, .. }) if size > 1 << 20
        ));
    }

    #[test]
    fn malformed_packs_are_refused() {
        let (dir, _, two) = two_versions();
        let p = pack(dir.path(), &[], &format!("{two}\n"));
        assert!(matches!(
            follow(b"PACX\0\0\0\x02\0\0\0\x01", 1 << 20, 3),
            Err(PackStreamError::Malformed(_))
        ));
        let mut bad = p.clone();
        bad[20] ^= 0xff;
        bad[21] ^= 0xff;
        assert!(
            matches!(follow(&bad, 2 << 20, 4096), Err(PackStreamError::Malformed(_))),
            "a pack with damaged zlib data passed"
        );
        assert_eq!(follow(&p[..p.len() / 2], 2 << 20, 4096), Ok(false));
    }
}
