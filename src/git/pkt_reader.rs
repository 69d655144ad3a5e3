//! Reads pkt-lines one at a time from a byte stream, taking exactly the
//! bytes of each packet, so that what follows (a pack) can be read from the
//! same stream.

use std::io::{self, Read};

use super::pktline::MAX_PACKET_LEN;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkt {
    Data(Vec<u8>),
    Flush,
    Delim,
    ResponseEnd,
}

impl Pkt {
    /// The payload without one trailing newline; `None` for special packets.
    pub fn line(&self) -> Option<&[u8]> {
        match self {
            Pkt::Data(d) => Some(d.strip_suffix(b"\n").unwrap_or(d)),
            _ => None,
        }
    }
}

pub struct PktReader<R> {
    inner: R,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: Read> PktReader<R> {
    pub fn new(inner: R) -> Self {
        PktReader { inner }
    }

    /// The next packet; `None` at a clean end of input (no byte of a new
    /// packet). A stream that ends inside a packet is `UnexpectedEof`.
    pub fn read_pkt(&mut self) -> io::Result<Option<Pkt>> {
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let text = std::str::from_utf8(&header).map_err(|_| bad("bad pkt-line length".into()))?;
        let len = usize::from_str_radix(text, 16)
            .map_err(|_| bad(format!("bad pkt-line length {:?}", String::from_utf8_lossy(&header))))?;
        match len {
            0 => Ok(Some(Pkt::Flush)),
            1 => Ok(Some(Pkt::Delim)),
            2 => Ok(Some(Pkt::ResponseEnd)),
            3 => Err(bad("bad pkt-line length 3".into())),
            n if n > MAX_PACKET_LEN => Err(bad(format!("pkt-line length {n} is over {MAX_PACKET_LEN}"))),
            n => {
                let mut data = vec![0u8; n - 4];
                self.inner.read_exact(&mut data)?;
                Ok(Some(Pkt::Data(data)))
            }
        }
    }

    /// The stream after the packets read so far.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_packets_and_leaves_the_rest() {
        let input = b"0009hello0000PACKrest".to_vec();
        let mut r = PktReader::new(&input[..]);
        assert_eq!(r.read_pkt().unwrap(), Some(Pkt::Data(b"hello".to_vec())));
        assert_eq!(r.read_pkt().unwrap(), Some(Pkt::Flush));
        let mut rest = Vec::new();
        r.into_inner().read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"PACKrest");
    }

    #[test]
    fn errors_on_truncated_and_malformed_input() {
        assert_eq!(PktReader::new(&b""[..]).read_pkt().unwrap(), None);
        for bad in [&b"00"[..], b"0009hel", b"zzzz", b"0003", b"fff0"] {
            assert!(PktReader::new(bad).read_pkt().is_err(), "{bad:?}");
        }
    }
}
