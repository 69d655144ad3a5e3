//! Reads pkt-lines one at a time from a byte stream, taking exactly the
//! bytes of each packet, so that what follows (a pack) can be read from the
//! same stream.

use std::io::{self, Read};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::pktline::{decode_header, Header, PktError};

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

fn bad(e: PktError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// The packet a parsed header starts, its payload (if any) still to read.
fn start(header: [u8; 4]) -> io::Result<Result<Pkt, usize>> {
    Ok(match decode_header(header).map_err(bad)? {
        Header::Flush => Ok(Pkt::Flush),
        Header::Delim => Ok(Pkt::Delim),
        Header::ResponseEnd => Ok(Pkt::ResponseEnd),
        Header::Data(n) => Err(n),
    })
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
        match start(header)? {
            Ok(special) => Ok(Some(special)),
            Err(n) => {
                let mut data = vec![0u8; n];
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

/// [`PktReader`] over an async stream, for requests read on the async side
/// (a push's commands, while no thread is held for the client).
pub struct AsyncPktReader<R> {
    inner: R,
}

impl<R: AsyncRead + Unpin> AsyncPktReader<R> {
    pub fn new(inner: R) -> Self {
        AsyncPktReader { inner }
    }

    /// As [`PktReader::read_pkt`].
    pub async fn read_pkt(&mut self) -> io::Result<Option<Pkt>> {
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut header[got..]).await? {
                0 if got == 0 => return Ok(None),
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => got += n,
            }
        }
        match start(header)? {
            Ok(special) => Ok(Some(special)),
            Err(n) => {
                let mut data = vec![0u8; n];
                self.inner.read_exact(&mut data).await?;
                Ok(Some(Pkt::Data(data)))
            }
        }
    }

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
        Read::read_to_end(&mut r.into_inner(), &mut rest).unwrap();
        assert_eq!(rest, b"PACKrest");
    }

    #[tokio::test]
    async fn the_async_reader_reads_the_same() {
        let input = b"0009hello00000001PACKrest".to_vec();
        let mut r = AsyncPktReader::new(&input[..]);
        assert_eq!(r.read_pkt().await.unwrap(), Some(Pkt::Data(b"hello".to_vec())));
        assert_eq!(r.read_pkt().await.unwrap(), Some(Pkt::Flush));
        assert_eq!(r.read_pkt().await.unwrap(), Some(Pkt::Delim));
        let mut rest = Vec::new();
        AsyncReadExt::read_to_end(&mut r.into_inner(), &mut rest).await.unwrap();
        assert_eq!(rest, b"PACKrest");
        assert_eq!(AsyncPktReader::new(&b""[..]).read_pkt().await.unwrap(), None);
        for bad in [&b"00"[..], b"0009hel", b"zzzz", b"0003", b"+00a123456"] {
            assert!(AsyncPktReader::new(bad).read_pkt().await.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_on_truncated_and_malformed_input() {
        assert_eq!(PktReader::new(&b""[..]).read_pkt().unwrap(), None);
        for bad in [
            &b"00"[..],
            b"0009hel",
            b"zzzz",
            b"0003",
            b"fff0",
            b"+00a123456",
            b" 00a123456",
        ] {
            assert!(PktReader::new(bad).read_pkt().is_err(), "{bad:?}");
        }
    }
}
