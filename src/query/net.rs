//! IP addresses and CIDR ranges for query filters.

use std::net::IpAddr;

use crate::index::normalize_ip;

/// An address or a CIDR range; IPv4-mapped IPv6 forms are normalized to IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `203.0.113.42`, `203.0.113.0/24`, `2001:db8::/32` or `::ffff:203.0.113.0/120`.
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
        };
        let norm = normalize_ip(addr);
        let prefix = if norm.is_ipv4() && addr.is_ipv6() {
            if prefix < 96 {
                return Err(format!(
                    "{s:?}: an IPv4-mapped range needs a prefix of at least 96"
                ));
            }
            prefix - 96
        } else {
            prefix
        };
        let net = IpNet { addr: norm, prefix };
        if net.masked(norm) != norm {
            return Err(format!(
                "{s:?} has host bits set below the /{prefix} prefix"
            ));
        }
        Ok(net)
    }

    /// True when the range is a single address.
    pub fn is_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v) => {
                let bits = u32::from(v);
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v) => {
                let bits = u128::from(v);
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                IpAddr::V6((bits & mask).into())
            }
        }
    }

    /// Whether `ip` (normalized) lies in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalize_ip(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contain() {
        let n = IpNet::parse("203.0.113.0/24").unwrap();
        assert!(n.contains("203.0.113.42".parse().unwrap()));
        assert!(n.contains("::ffff:203.0.113.7".parse().unwrap()));
        assert!(!n.contains("203.0.114.1".parse().unwrap()));
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let m = IpNet::parse("::ffff:203.0.113.0/120").unwrap();
        assert_eq!(m, n);
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(IpNet::parse("203.0.113.42").unwrap().is_host());
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        for bad in [
            "203.0.113.0/33",
            "203.0.113.1/24",
            "foo",
            "1.2.3.4/x",
            "::ffff:1.2.3.0/80",
            "",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }
}
