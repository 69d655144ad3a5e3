//! Client addresses: CIDR blocks, the client behind trusted proxies, and
//! the key a client is counted under (an IPv6 client by its /64, which it
//! can rotate within at will).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// An address block such as `10.0.0.0/8` or `2001:db8::/32` (a bare
/// address is its own block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<u8>().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u32::from(net).into(), 32, self.prefix) == mask(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(net), 128, self.prefix) == mask(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(bits: u128, width: u32, prefix: u8) -> u128 {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return 0;
    }
    bits >> (width - prefix)
}

/// An IPv4 address seen as `::ffff:a.b.c.d` is the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client of a request from `peer`: behind a trusted proxy (`peer`
/// in `trusted`), the right-most address of `X-Forwarded-For` that is not
/// itself a trusted proxy; otherwise the peer, whatever the header says.
pub fn client_ip(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let Some(header) = forwarded_for else { return Some(peer) };
    let mut client = peer;
    for part in header.rsplit(',').map(str::trim) {
        let Ok(ip) = part.parse::<IpAddr>().map(canonical) else {
            // Garbage in the chain: stop at the last address we could trust.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// The key a client's failures are counted under: `ip:<IPv4>`, or
/// `ip:<the /64>` for IPv6.
pub fn client_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let net = Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1));
            format!("ip:{net}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_contain() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "nope",
            "10.0.0.0/8/8",
            "",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_client_behind_trusted_proxies_only() {
        let proxies = [Cidr::parse("10.0.0.0/8").unwrap()];
        let xff = Some("198.51.100.7, 203.0.113.9, 10.0.0.5");
        // From a trusted proxy: the right-most untrusted entry.
        assert_eq!(client_ip(Some(ip("10.0.0.1")), xff, &proxies), Some(ip("203.0.113.9")));
        // From anyone else, the header is ignored.
        assert_eq!(client_ip(Some(ip("192.0.2.1")), xff, &proxies), Some(ip("192.0.2.1")));
        assert_eq!(client_ip(Some(ip("10.0.0.1")), xff, &[]), Some(ip("10.0.0.1")));
        // No header, or only proxies in it, or garbage: the last trusted hop.
        assert_eq!(client_ip(Some(ip("10.0.0.1")), None, &proxies), Some(ip("10.0.0.1")));
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some("10.0.0.9"), &proxies),
            Some(ip("10.0.0.9"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some("evil, 10.0.0.9"), &proxies),
            Some(ip("10.0.0.9"))
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_slash_64() {
        assert_eq!(client_key(ip("192.0.2.7")), "ip:192.0.2.7");
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), "ip:192.0.2.7");
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), "ip:2001:db8:1:2::/64");
        assert_eq!(
            client_key(ip("2001:db8:1:2:bbbb::9")),
            client_key(ip("2001:db8:1:2::1"))
        );
        assert_ne!(client_key(ip("2001:db8:1:3::1")), client_key(ip("2001:db8:1:2::1")));
    }
}
