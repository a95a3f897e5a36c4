//! Who is asking (SPEC §8): the TCP peer — or, when the peer is a trusted proxy, the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use hyper::HeaderMap;
use ipnet::IpNet;

use crate::domain::{Client, ClientAddr};

/// The networks whose `X-Forwarded-For` is believed (`AUTH_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a single address (`192.0.2.1`).
    pub fn parse(item: &str) -> Result<IpNet, String> {
        item.parse::<IpNet>()
            .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
            .map(|net| net.trunc())
            .map_err(|_| format!("{item:?} is not an address or a CIDR range"))
    }

    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` with `headers`. `X-Forwarded-For` from any
    /// peer but a trusted proxy is ignored, so it cannot be spoofed to escape a limit.
    /// Hops are read from the right — those our proxies appended — and only as far as the
    /// first that is not a proxy of ours; a malformed hop reached before it counts as the
    /// peer, limited like any client (junk must never buy the proxies' exemption).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> Client {
        let peer = canonical(peer.ip());
        if !self.contains(peer) {
            return self.untrusted(peer);
        }
        let mut farthest = None;
        for hop in hops_from_the_right(headers) {
            match hop.and_then(parse_hop).map(canonical) {
                Some(ip) if self.contains(ip) => farthest = Some(ip),
                Some(ip) => return self.untrusted(ip),
                None => return self.untrusted(peer),
            }
        }
        // No header, or every hop a proxy of ours: a proxy is the client, never limited.
        Client {
            addr: ClientAddr::of(farthest.unwrap_or(peer)),
            trusted: true,
        }
    }

    fn untrusted(&self, ip: IpAddr) -> Client {
        Client {
            addr: ClientAddr::of(ip),
            trusted: false,
        }
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The `X-Forwarded-For` hops, right-most first (later header lines first); `None` for a
/// hop that is not text.
fn hops_from_the_right(headers: &HeaderMap) -> impl Iterator<Item = Option<&str>> {
    let lines: Vec<Option<&str>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok())
        .collect();
    lines.into_iter().rev().flat_map(|line| {
        let hops: Vec<Option<&str>> = match line {
            Some(text) => text.split(',').map(|h| Some(h.trim())).collect(),
            None => vec![None],
        };
        hops.into_iter().rev()
    })
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            list.iter()
                .map(|n| TrustedProxies::parse(n).unwrap())
                .collect(),
        )
    }

    fn client(proxies: &TrustedProxies, peer: &str, xff: &[&str]) -> (String, bool) {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        let peer: SocketAddr = format!("{peer}:5000")
            .replace("[:", "[")
            .parse()
            .unwrap_or_else(|_| format!("[{peer}]:5000").parse().unwrap());
        let c = proxies.client(peer, &headers);
        (c.addr.to_string(), c.trusted)
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop_behind_a_trusted_peer() {
        let lb = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"]);
        let none = proxies(&[]);
        #[rustfmt::skip]
        let table: &[(&TrustedProxies, &str, &[&str], &str, bool)] = &[
            // No proxy trusted: the header is anybody's to write, and ignored.
            (&none, "203.0.113.9", &["198.51.100.1"], "203.0.113.9", false),
            (&none, "203.0.113.9", &[], "203.0.113.9", false),
            // An untrusted peer cannot spoof its way out either.
            (&lb, "203.0.113.9", &["198.51.100.1"], "203.0.113.9", false),
            // Behind the load balancer: the right-most hop it did not add itself.
            (&lb, "10.1.2.3", &["198.51.100.1"], "198.51.100.1", false),
            (&lb, "10.1.2.3", &["6.6.6.6, 198.51.100.1"], "198.51.100.1", false),
            (&lb, "10.1.2.3", &["6.6.6.6, 198.51.100.1, 10.9.9.9"], "198.51.100.1", false),
            (&lb, "10.1.2.3", &["6.6.6.6", "198.51.100.1, 10.9.9.9"], "198.51.100.1", false),
            (&lb, "10.1.2.3", &["198.51.100.1:4711"], "198.51.100.1", false),
            (&lb, "10.1.2.3", &["[2001:db8:1:2::7]:4711"], "2001:db8:1:2::/64", false),
            (&lb, "192.0.2.1", &["198.51.100.1"], "198.51.100.1", false),
            // Junk the client wrote in front of what our proxy appended: ignored.
            (&lb, "10.1.2.3", &["x, 198.51.100.1"], "198.51.100.1", false),
            (&lb, "10.1.2.3", &["unknown", "198.51.100.1"], "198.51.100.1", false),
            // A malformed hop reached before any client: the peer, limited like a client.
            (&lb, "10.1.2.3", &["198.51.100.1, not-an-ip"], "10.1.2.3", false),
            (&lb, "10.1.2.3", &["unknown"], "10.1.2.3", false),
            (&lb, "10.1.2.3", &["198.51.100.1,"], "10.1.2.3", false),
            (&lb, "10.1.2.3", &["fe80::1%eth0"], "10.1.2.3", false),
            // No header from the proxy: the proxy itself, never limited.
            (&lb, "10.1.2.3", &[], "10.1.2.3", true),
            // Every hop a proxy of ours: the farthest.
            (&lb, "10.1.2.3", &["10.5.5.5, 10.6.6.6"], "10.5.5.5", true),
            // IPv6 peers, and a /64 for the client.
            (&lb, "2001:db8:ffff::1", &["2001:db8:1:2:3:4:5:6"], "2001:db8:1:2::/64", false),
            (&none, "2001:db8:1:2:3:4:5:6", &[], "2001:db8:1:2::/64", false),
            (&lb, "::ffff:10.1.2.3", &["::ffff:198.51.100.1"], "198.51.100.1", false),
        ];
        for (proxies, peer, xff, expected, trusted) in table {
            assert_eq!(
                client(proxies, peer, xff),
                (expected.to_string(), *trusted),
                "peer {peer}, X-Forwarded-For {xff:?}"
            );
        }
    }

    #[test]
    fn ranges_and_single_addresses_parse() {
        assert!(TrustedProxies::parse("10.0.0.0/8").is_ok());
        assert!(TrustedProxies::parse("10.1.2.3").is_ok());
        assert!(TrustedProxies::parse("2001:db8::/32").is_ok());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("lb.internal").is_err());
    }
}
