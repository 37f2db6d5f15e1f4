//! The client a request is limited as: its IP from the peer or, through trusted proxies
//! ([`Cidr`]), from `Forwarded` / `X-Forwarded-For`; IPv6 grouped by a prefix.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::{header, HeaderMap};
use rustauth_kv::{KvError, KvResult};

/// The client part of the bucket of a request with no usable address (Better Auth's).
pub(crate) const NO_TRUSTED_IP: &str = "no-trusted-ip";

/// An IP network, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                mask(u32::from(a).into(), 32, self.bits) == u32::from(n).into()
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => mask(u128::from(a), 128, self.bits) == u128::from(n),
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = KvError;

    fn from_str(s: &str) -> KvResult<Cidr> {
        let bad = |why: &str| KvError::invalid_config(format!("trusted proxy {s:?}: {why}"));
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (
                a,
                Some(b.parse::<u8>().map_err(|_| bad("bad prefix length"))?),
            ),
            None => (s.trim(), None),
        };
        let addr = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| bad("not an IP address"))?,
        );
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(width);
        if bits > width {
            return Err(bad("prefix length too long"));
        }
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4((mask(u32::from(a).into(), 32, bits) as u32).into()),
            IpAddr::V6(a) => IpAddr::V6(mask(u128::from(a), 128, bits).into()),
        };
        Ok(Cidr { network, bits })
    }
}

/// The first `bits` of a `width`-bit address.
fn mask(addr: u128, width: u8, bits: u8) -> u128 {
    if bits == 0 {
        return 0;
    }
    let ones = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    addr & (ones << (width - bits)) & ones
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How the layer finds the client's IP: the peer, or through trusted proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    pub(super) trusted: Vec<Cidr>,
    pub(super) ipv6_prefix: u8,
}

impl Default for ClientIp {
    fn default() -> Self {
        ClientIp {
            trusted: Vec::new(),
            ipv6_prefix: 64,
        }
    }
}

impl ClientIp {
    /// The client of a request from `peer` with `headers`: the peer itself unless it is a
    /// trusted proxy; then the rightmost address of the forwarding chain that is not a
    /// trusted proxy (`Forwarded` when present, else `X-Forwarded-For`). `None` when the
    /// peer is unknown or the chain holds something that is not an address where the
    /// client should be.
    pub fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let chain = forwarded_chain(headers);
        let mut leftmost = peer;
        for hop in chain.iter().rev() {
            let ip = canonical(parse_hop(hop)?);
            if !self.is_trusted(ip) {
                return Some(ip);
            }
            leftmost = ip;
        }
        Some(leftmost)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client part of a bucket: IPv4 as is, IPv6 masked to the prefix and written
    /// fully expanded (`2001:0db8:abcd:0012:0000:0000:0000:0000` for a /64).
    pub fn bucket_part(&self, ip: IpAddr) -> String {
        match canonical(ip) {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = Ipv6Addr::from(mask(u128::from(v6), 128, self.ipv6_prefix)).segments();
                s.iter()
                    .map(|x| format!("{x:04x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }
        }
    }
}

/// The forwarding chain, client first: `for=` of every `Forwarded` element, or else
/// every `X-Forwarded-For` entry, over all header lines in order.
fn forwarded_chain(headers: &HeaderMap) -> Vec<String> {
    let lines = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let forwarded = lines(header::FORWARDED);
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.eq_ignore_ascii_case("for")
                            .then(|| v.trim_matches('"').to_owned())
                    })
                    .unwrap_or_default()
            })
            .collect();
    }
    lines(header::HeaderName::from_static("x-forwarded-for"))
}

/// One hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.1.2.3")) && !c.contains(ip("11.0.0.1")));
        assert!(
            c.contains(ip("::ffff:10.9.9.9")),
            "IPv4-mapped counts as IPv4"
        );
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")) && !c.contains(ip("2001:db9::1")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_str(k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let c = ClientIp {
            trusted: vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            ipv6_prefix: 64,
        };
        let xff = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.9"),
        ]);
        let cases = [
            (Some("9.9.9.9"), xff.clone(), Some("9.9.9.9")), // untrusted peer: headers ignored
            (Some("10.0.0.1"), xff.clone(), Some("1.2.3.4")), // spoofed 6.6.6.6 ignored
            (Some("10.0.0.1"), HeaderMap::new(), Some("10.0.0.1")),
            (
                Some("10.0.0.1"),
                headers(&[("x-forwarded-for", "junk")]),
                None,
            ),
            (
                Some("::1"),
                headers(&[(
                    "forwarded",
                    r#"for=1.1.1.1, for="[2001:db8::7]:443";proto=https"#,
                )]),
                Some("2001:db8::7"),
            ),
            (
                Some("10.0.0.1"),
                headers(&[("forwarded", "for=unknown")]),
                None,
            ),
            (None, xff, None),
        ];
        for (peer, h, want) in cases {
            assert_eq!(c.resolve(peer.map(ip), &h), want.map(ip), "{peer:?} {h:?}");
        }
    }

    #[test]
    fn ipv6_buckets_follow_the_prefix() {
        let mut c = ClientIp::default();
        let a = ip("2001:db8:abcd:12:ffff:1:2:3");
        let default = c.bucket_part(a);
        assert_eq!(
            format!("{default}|/sign-in"),
            rustauth_kv::rate_limit::bucket_key(Some("2001:db8:abcd:12:ffff:1:2:3"), "/sign-in"),
            "the default is bucket_key's /64"
        );
        c.ipv6_prefix = 48;
        assert_eq!(c.bucket_part(a), "2001:0db8:abcd:0000:0000:0000:0000:0000");
        c.ipv6_prefix = 128;
        assert_eq!(c.bucket_part(a), "2001:0db8:abcd:0012:ffff:0001:0002:0003");
        assert_eq!(c.bucket_part(ip("::ffff:1.2.3.4")), "1.2.3.4");
    }
}
