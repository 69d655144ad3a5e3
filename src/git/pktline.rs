//! pkt-line framing: encoding and an incremental, sans-I/O decoder.
//!
//! A pkt-line is 4 hex digits giving the total length (the 4 included)
//! followed by that many bytes minus 4 of payload. `0000` is a flush,
//! `0001` a delimiter and `0002` a response end (protocol v2). `0003` is
//! invalid; `0004` is a data packet with an empty payload, as git reads it.

use std::fmt;

/// Largest packet git accepts, header included.
pub const MAX_PACKET_LEN: usize = 65520;
/// Largest payload of one data packet.
pub const MAX_DATA_LEN: usize = MAX_PACKET_LEN - 4;
/// Largest payload of one side-band packet (one byte goes to the band).
pub const MAX_SIDEBAND_DATA: usize = MAX_DATA_LEN - 1;

/// The flush packet.
pub const FLUSH: &[u8] = b"0000";
/// The delimiter packet (protocol v2).
pub const DELIM: &[u8] = b"0001";
/// The response-end packet (protocol v2).
pub const RESPONSE_END: &[u8] = b"0002";

/// One decoded packet; data borrows from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    Data(&'a [u8]),
    Flush,
    Delim,
    ResponseEnd,
}

impl<'a> Packet<'a> {
    /// The payload of a data packet with one trailing `\n` removed, or
    /// `None` for flush, delim and response-end.
    pub fn line(&self) -> Option<&'a [u8]> {
        match self {
            Packet::Data(d) => Some(d.strip_suffix(b"\n").unwrap_or(d)),
            _ => None,
        }
    }
}

/// A framing error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PktError {
    /// The 4 length bytes are not hex digits.
    BadHex([u8; 4]),
    /// A length git rejects (3), or one above [`MAX_PACKET_LEN`].
    BadLength(usize),
    /// A payload too large for one packet when encoding.
    TooLong(usize),
    /// The input ended inside a packet (only from [`decode_all`]).
    Truncated,
}

impl fmt::Display for PktError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PktError::BadHex(b) => write!(
                f,
                "protocol error: bad line length character: {}",
                String::from_utf8_lossy(b)
            ),
            PktError::BadLength(n) => write!(f, "protocol error: bad line length {n}"),
            PktError::TooLong(n) => write!(f, "payload of {n} bytes does not fit in a pkt-line"),
            PktError::Truncated => write!(f, "the remote end hung up unexpectedly"),
        }
    }
}

impl std::error::Error for PktError {}

fn hex_value(b: u8) -> Option<usize> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as usize),
        b'a'..=b'f' => Some((b - b'a' + 10) as usize),
        b'A'..=b'F' => Some((b - b'A' + 10) as usize),
        _ => None,
    }
}

/// What a 4-byte pkt-line header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Flush,
    Delim,
    ResponseEnd,
    /// A data packet with this many payload bytes after the header.
    Data(usize),
}

/// Parses a pkt-line header: exactly four hex digits (no sign, no
/// space), a length git accepts.
pub fn decode_header(header: [u8; 4]) -> Result<Header, PktError> {
    let mut len = 0usize;
    for b in header {
        len = len * 16 + hex_value(b).ok_or(PktError::BadHex(header))?;
    }
    match len {
        0 => Ok(Header::Flush),
        1 => Ok(Header::Delim),
        2 => Ok(Header::ResponseEnd),
        3 => Err(PktError::BadLength(len)),
        n if n > MAX_PACKET_LEN => Err(PktError::BadLength(len)),
        n => Ok(Header::Data(n - 4)),
    }
}

/// Decode one packet from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a packet ("need more"),
/// `Ok(Some((packet, used)))` with the number of bytes the packet took, or an
/// error for a bad header. Never reads past `buf` and never panics.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, PktError> {
    let Some(&[a, b, c, d]) = buf.get(..4) else {
        return Ok(None);
    };
    Ok(match decode_header([a, b, c, d])? {
        Header::Flush => Some((Packet::Flush, 4)),
        Header::Delim => Some((Packet::Delim, 4)),
        Header::ResponseEnd => Some((Packet::ResponseEnd, 4)),
        Header::Data(n) => buf.get(4..4 + n).map(|p| (Packet::Data(p), 4 + n)),
    })
}

/// The packets of a complete buffer, one at a time (nothing is collected:
/// a request is read as it is walked). Input that ends inside a packet
/// gives [`PktError::Truncated`], then nothing more.
pub fn packets(buf: &[u8]) -> impl Iterator<Item = Result<Packet<'_>, PktError>> {
    let mut rest = Some(buf);
    std::iter::from_fn(move || {
        let buf = rest.filter(|b| !b.is_empty())?;
        match decode(buf) {
            Ok(Some((packet, used))) => {
                rest = Some(&buf[used..]);
                Some(Ok(packet))
            }
            Ok(None) => {
                rest = None;
                Some(Err(PktError::Truncated))
            }
            Err(e) => {
                rest = None;
                Some(Err(e))
            }
        }
    })
}

/// Decode a complete buffer into packets. Unlike [`decode`], input that ends
/// inside a packet is an error ([`PktError::Truncated`]).
pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Packet<'_>>, PktError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (packet, used) = decode(buf)?.ok_or(PktError::Truncated)?;
        out.push(packet);
        buf = &buf[used..];
    }
    Ok(out)
}

/// Append one data packet carrying `payload`. Fails, appending nothing, if
/// the payload exceeds [`MAX_DATA_LEN`].
pub fn write_data(out: &mut Vec<u8>, payload: &[u8]) -> Result<(), PktError> {
    if payload.len() > MAX_DATA_LEN {
        return Err(PktError::TooLong(payload.len()));
    }
    out.extend_from_slice(format!("{:04x}", payload.len() + 4).as_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Append `text` followed by `\n` as one data packet.
pub fn write_line(out: &mut Vec<u8>, text: &str) -> Result<(), PktError> {
    let mut payload = Vec::with_capacity(text.len() + 1);
    payload.extend_from_slice(text.as_bytes());
    payload.push(b'\n');
    write_data(out, &payload)
}

/// Append a flush packet `0000`.
pub fn write_flush(out: &mut Vec<u8>) {
    out.extend_from_slice(FLUSH);
}

/// Append a delimiter packet `0001`.
pub fn write_delim(out: &mut Vec<u8>) {
    out.extend_from_slice(DELIM);
}

/// Append a response-end packet `0002`.
pub fn write_response_end(out: &mut Vec<u8>) {
    out.extend_from_slice(RESPONSE_END);
}

/// Append an `ERR <message>` packet (no LF, as git writes it), which makes the client stop and show
/// the message. A message too long for one packet is cut (at a character
/// boundary) so that this never fails.
pub fn write_err(out: &mut Vec<u8>, message: &str) {
    let mut end = message.len().min(MAX_DATA_LEN - 4);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = b"ERR ".to_vec();
    payload.extend_from_slice(&message.as_bytes()[..end]);
    // Cannot fail: the payload is at most MAX_DATA_LEN bytes.
    let _ = write_data(out, &payload);
}

/// The side-band channels of side-band-64k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// Band 1: pack data.
    Data = 1,
    /// Band 2: progress messages shown to the user.
    Progress = 2,
    /// Band 3: a fatal error; the conversation ends.
    Error = 3,
}

/// Append `payload` on side-band `band`, split into as many packets as
/// needed, each carrying at most [`MAX_SIDEBAND_DATA`] bytes. An empty
/// payload appends nothing (use [`write_keepalive`] for an empty packet).
pub fn write_sideband(out: &mut Vec<u8>, band: Band, payload: &[u8]) {
    for chunk in payload.chunks(MAX_SIDEBAND_DATA) {
        out.extend_from_slice(format!("{:04x}", chunk.len() + 5).as_bytes());
        out.push(band as u8);
        out.extend_from_slice(chunk);
    }
}

/// Append the keep-alive packet `0005\x01`: an empty band-1 packet.
pub fn write_keepalive(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0005\x01");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_special_packets() {
        assert_eq!(decode(b"0000").unwrap(), Some((Packet::Flush, 4)));
        assert_eq!(decode(b"0001rest").unwrap(), Some((Packet::Delim, 4)));
        assert_eq!(decode(b"0002").unwrap(), Some((Packet::ResponseEnd, 4)));
    }

    #[test]
    fn zero_four_is_an_empty_data_packet() {
        assert_eq!(decode(b"0004").unwrap(), Some((Packet::Data(b""), 4)));
    }

    #[test]
    fn decodes_data_and_reports_bytes_used() {
        let buf = b"0009done\n0000";
        let (p, used) = decode(buf).unwrap().unwrap();
        assert_eq!(p, Packet::Data(b"done\n"));
        assert_eq!(p.line(), Some(&b"done"[..]));
        assert_eq!(used, 9);
        assert_eq!(decode(&buf[used..]).unwrap(), Some((Packet::Flush, 4)));
    }

    #[test]
    fn accepts_upper_case_hex() {
        let mut buf = b"000A".to_vec();
        buf.extend_from_slice(b"abcdef");
        assert_eq!(decode(&buf).unwrap(), Some((Packet::Data(b"abcdef"), 10)));
    }

    #[test]
    fn truncated_input_needs_more() {
        for cut in 0..9 {
            assert_eq!(decode(&b"0009done\n"[..cut]).unwrap(), None, "cut {cut}");
        }
        assert_eq!(decode(b"").unwrap(), None);
        assert_eq!(decode(b"00").unwrap(), None);
    }

    #[test]
    fn rejects_bad_headers() {
        assert!(matches!(decode(b"0003"), Err(PktError::BadLength(3))));
        assert!(matches!(decode(b"zzzz"), Err(PktError::BadHex(_))));
        assert!(matches!(decode(b"00g1xx"), Err(PktError::BadHex(_))));
        assert!(matches!(decode(b"-001"), Err(PktError::BadHex(_))));
        // Rust's from_str_radix would take a sign or a space; git does not.
        assert!(matches!(decode(b"+00a123456"), Err(PktError::BadHex(_))));
        assert!(matches!(decode_header(*b" 00a"), Err(PktError::BadHex(_))));
        assert!(matches!(decode(b"fff1"), Err(PktError::BadLength(0xfff1))));
        assert!(matches!(decode(b"ffff"), Err(PktError::BadLength(0xffff))));
        // The largest legal length is fine (and needs more bytes here).
        assert_eq!(decode(b"fff0").unwrap(), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let len = (seed % 12) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    b"0123456789abcdefxyz\n\0"[(seed >> 16) as usize % 21]
                })
                .collect();
            let _ = decode(&buf);
            let _ = decode_all(&buf);
        }
    }

    #[test]
    fn decode_all_splits_and_detects_truncation() {
        let packets = decode_all(b"0008abcd00010000").unwrap();
        assert_eq!(packets, vec![Packet::Data(b"abcd"), Packet::Delim, Packet::Flush]);
        assert_eq!(decode_all(b"0008abc"), Err(PktError::Truncated));
        assert_eq!(decode_all(b"00"), Err(PktError::Truncated));
        assert!(decode_all(b"").unwrap().is_empty());
    }

    #[test]
    fn encodes_lines_and_specials() {
        let mut out = Vec::new();
        write_line(&mut out, "# service=git-upload-pack").unwrap();
        write_flush(&mut out);
        write_delim(&mut out);
        write_response_end(&mut out);
        assert_eq!(out, b"001e# service=git-upload-pack\n000000010002");
    }

    #[test]
    fn data_limits() {
        let mut out = Vec::new();
        write_data(&mut out, &vec![b'x'; MAX_DATA_LEN]).unwrap();
        assert_eq!(&out[..4], b"fff0");
        assert_eq!(decode(&out).unwrap().unwrap().1, MAX_PACKET_LEN);
        let before = out.len();
        assert_eq!(
            write_data(&mut out, &vec![b'x'; MAX_DATA_LEN + 1]),
            Err(PktError::TooLong(MAX_DATA_LEN + 1))
        );
        assert_eq!(out.len(), before);
    }

    #[test]
    fn err_packet() {
        let mut out = Vec::new();
        write_err(&mut out, "upload-pack: not our ref 1234");
        assert_eq!(out, b"0025ERR upload-pack: not our ref 1234");
        let mut long = Vec::new();
        write_err(&mut long, &"é".repeat(40000));
        let (p, used) = decode(&long).unwrap().unwrap();
        assert_eq!(used, long.len());
        assert!(p.line().unwrap().starts_with(b"ERR "));
        assert!(std::str::from_utf8(p.line().unwrap()).is_ok());
    }

    #[test]
    fn sideband_splits_at_65515() {
        let payload: Vec<u8> = (0..150_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        write_sideband(&mut out, Band::Data, &payload);
        let packets = decode_all(&out).unwrap();
        assert_eq!(packets.len(), 3);
        let mut joined = Vec::new();
        for p in &packets {
            let Packet::Data(d) = p else { panic!("not data") };
            assert_eq!(d[0], 1);
            assert!(d.len() - 1 <= MAX_SIDEBAND_DATA);
            joined.extend_from_slice(&d[1..]);
        }
        assert_eq!(packets[0], Packet::Data(&out[4..4 + 65516]));
        assert_eq!(joined, payload);
        assert_eq!(&out[..4], b"fff0");
    }

    #[test]
    fn sideband_bands_and_keepalive() {
        let mut out = Vec::new();
        write_sideband(&mut out, Band::Progress, b"hi");
        write_sideband(&mut out, Band::Error, b"no");
        write_sideband(&mut out, Band::Data, b"");
        write_keepalive(&mut out);
        assert_eq!(out, b"0007\x02hi0007\x03no0005\x01");
    }
}
