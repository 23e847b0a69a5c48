//! Where a plugin's outbound requests may go: `allowed_hosts` patterns, and the
//! addresses no request reaches unless its host is listed (loopback, private,
//! link-local and metadata, CGNAT, unspecified, multicast, and their IPv6 forms,
//! IPv4-mapped and NAT64 addresses judged by the IPv4 address inside).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One `allowed_hosts` entry: `host`, `*.domain`, either with an optional `:port`.
#[derive(Clone, Debug, PartialEq)]
struct Pattern {
    host: String,
    /// `*.domain`: any name below `domain` (not `domain` itself).
    wildcard: bool,
    port: Option<u16>,
}

impl Pattern {
    fn parse(s: &str) -> Result<Pattern, String> {
        let t = s.trim().to_ascii_lowercase();
        let bad = |why: &str| format!("allowed_hosts entry {s:?} {why}");
        if t.is_empty() {
            return Err(bad("is empty"));
        }
        if t.contains("://") || t.contains('/') || t.contains('@') {
            return Err(bad("must be a host with an optional :port, not a URL"));
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().map_err(|_| bad("has a bad port"))?),
                None if after.is_empty() => None,
                None => return Err(bad("has text after ]")),
            };
            (h.to_string(), port)
        } else {
            match t.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (
                    h.to_string(),
                    Some(p.parse().map_err(|_| bad("has a bad port"))?),
                ),
                _ => (t.clone(), None),
            }
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(d) => (d.to_string(), true),
            None => (host, false),
        };
        if host.is_empty() || host.contains('*') {
            return Err(bad("has a misplaced *"));
        }
        Ok(Pattern {
            host,
            wildcard,
            port,
        })
    }

    /// Whether `host` on `port` matches; `port = None` matches any port.
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let host_ok = if self.wildcard {
            host.strip_suffix(&self.host)
                .is_some_and(|rest| rest.ends_with('.'))
        } else {
            host == self.host
        };
        host_ok && (self.port.is_none() || port.is_none() || self.port == port)
    }
}

/// A plugin's outbound policy.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policy {
    /// `None`: any public address. `Some`: only these hosts.
    allowed: Option<Vec<Pattern>>,
}

/// What the policy says about a host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Not allowed at all.
    Denied,
    /// Allowed, but only at public addresses.
    Public,
    /// Listed in `allowed_hosts`: any address it resolves to.
    Listed,
}

impl Policy {
    pub(crate) fn new(allowed_hosts: Option<&[String]>) -> Result<Policy, Vec<String>> {
        let Some(list) = allowed_hosts else {
            return Ok(Policy::default());
        };
        let mut problems = Vec::new();
        let mut allowed = Vec::new();
        for s in list {
            match Pattern::parse(s) {
                Ok(p) => allowed.push(p),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(Policy {
                allowed: Some(allowed),
            })
        } else {
            Err(problems)
        }
    }

    /// The verdict for `host` (lowercase, IPv6 without brackets) on `port`; with
    /// `port = None` (when resolving a name), whether any port of it is listed.
    pub(crate) fn host(&self, host: &str, port: Option<u16>) -> Verdict {
        match &self.allowed {
            None => Verdict::Public,
            Some(list) if list.iter().any(|p| p.matches(host, port)) => Verdict::Listed,
            Some(_) => Verdict::Denied,
        }
    }
}

/// True for addresses no request reaches unless their host is listed.
pub(crate) fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return internal_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] & 0xfe00) == 0xfc00 // unique local, includes fd00:ec2::254
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // includes 169.254.169.254
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || o[0] >= 240 // reserved
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or 6to4 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0; 5]
        && (s[5] == 0xffff || (s[5] == 0 && !v6.is_loopback() && !v6.is_unspecified()))
    {
        return Some(tail); // ::ffff:a.b.c.d and ::a.b.c.d
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail); // NAT64 64:ff9b::/96
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )); // 6to4
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(internal(a.parse().unwrap()), "{a} is internal");
        }
        for a in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!internal(a.parse().unwrap()), "{a} is public");
        }
    }

    #[test]
    fn patterns_match_hosts_and_ports() {
        let p = Policy::new(Some(&[
            "api.example.com".into(),
            "*.svc.test".into(),
            "127.0.0.1:8080".into(),
            "[::1]:9".into(),
        ]))
        .unwrap();
        assert_eq!(p.host("api.example.com", Some(443)), Verdict::Listed);
        assert_eq!(p.host("other.example.com", Some(443)), Verdict::Denied);
        assert_eq!(p.host("a.svc.test", Some(80)), Verdict::Listed);
        assert_eq!(
            p.host("svc.test", Some(80)),
            Verdict::Denied,
            "*.domain is below the domain only"
        );
        assert_eq!(p.host("evilsvc.test", Some(80)), Verdict::Denied);
        assert_eq!(p.host("127.0.0.1", Some(8080)), Verdict::Listed);
        assert_eq!(p.host("127.0.0.1", Some(8081)), Verdict::Denied);
        assert_eq!(p.host("::1", Some(9)), Verdict::Listed);
        assert_eq!(Policy::default().host("anything", Some(1)), Verdict::Public);
        let e = Policy::new(Some(&["http://x/".into(), "*".into(), "a:b".into()])).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
