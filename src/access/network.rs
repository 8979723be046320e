//! Network access rules: source addresses and CIDR blocks, IPv4 and IPv6, and the
//! endpoint each rule is for (its network type).

use super::endpoint::EndpointKind;
use std::net::IpAddr;

/// Network types a rule may have. The type decides which gateway endpoint's requests the
/// rule may admit ([`admits_endpoint`]); the sources decide which addresses.
pub const NETWORK_TYPES: [&str; 3] = ["Private", "VPC", "Public"];

/// Whether a rule of `network_type` may admit requests that arrived on `endpoint`:
/// `Private` and `VPC` rules only on the private endpoint, `Public` rules only on the
/// Internet endpoint. One address can reach both endpoints (behind NAT, or through a proxy
/// in front of the Internet endpoint), so the sources alone do not say which network a
/// request came through, and a rule written for one endpoint must never open the other.
/// Unknown types admit nothing.
pub fn admits_endpoint(network_type: &str, endpoint: EndpointKind) -> bool {
    match endpoint {
        EndpointKind::Private => matches!(network_type, "Private" | "VPC"),
        EndpointKind::Internet => network_type == "Public",
    }
}

/// Most addresses/blocks in one rule.
pub const MAX_SOURCES: usize = 100;

/// An address block: `addr/prefix`. A single address is a block with a full prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are their IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all: u128 = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        all & !((1u128 << (width - prefix)) - 1) & all
    }
}

impl Cidr {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`, `::1`. Host bits below the prefix must be
    /// zero, so a typo like `10.0.0.1/8` is caught instead of silently widening the rule.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let (value, width) = bits(addr);
        let prefix = match prefix {
            None => width,
            Some(p) => {
                let n: u8 = p
                    .parse()
                    .map_err(|_| format!("{text:?}: prefix length {p:?} is not a number"))?;
                if n > width {
                    return Err(format!("{text:?}: prefix length must be 0..{width}"));
                }
                n
            }
        };
        if value & !mask(prefix, width) != 0 {
            return Err(format!(
                "{text:?} has host bits set below /{prefix}; did you mean the block's first address?"
            ));
        }
        // An IPv4-mapped block is the IPv4 block it maps.
        if let IpAddr::V6(v6) = addr {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                return Ok(Cidr {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                });
            }
        }
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the block. IPv4 blocks match IPv4-mapped IPv6 addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let (net, width) = bits(self.addr);
        let (host, host_width) = bits(ip);
        width == host_width && (host & mask(self.prefix, width)) == net
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether `ip` matches any of `sources` (unparsable entries match nothing).
pub fn allows(sources: &[String], ip: IpAddr) -> bool {
    sources
        .iter()
        .filter_map(|s| Cidr::parse(s).ok())
        .any(|c| c.contains(ip))
}

/// Source addresses as the operator typed them, without the spaces around each one
/// (`--source-ips "10.0.0.0/8, fd00::/8"`).
pub fn trimmed(sources: &[String]) -> Vec<String> {
    sources.iter().map(|s| s.trim().to_owned()).collect()
}

/// Checks a rule's network type and sources.
pub fn validate(network_type: &str, sources: &[String]) -> Result<(), String> {
    if !NETWORK_TYPES.contains(&network_type) {
        return Err(format!(
            "network type {network_type:?} is not one of {}",
            NETWORK_TYPES.join(", ")
        ));
    }
    if sources.is_empty() {
        return Err("a network rule needs at least one source address or CIDR block".into());
    }
    if sources.len() > MAX_SOURCES {
        return Err(format!(
            "a network rule holds at most {MAX_SOURCES} addresses"
        ));
    }
    for s in sources {
        Cidr::parse(s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_and_addresses() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::1", "::1", true),
            ("::ffff:10.0.0.1", "10.0.0.1", true),
            ("::ffff:10.0.0.0/104", "10.9.9.9", true),
            ("::/0", "2001:db8::1", true),
            ("::/0", "127.0.0.1", false),
            ("172.16.0.0/12", "172.31.255.255", true),
            ("172.16.0.0/12", "172.32.0.0", false),
        ];
        for (block, addr, want) in cases {
            assert_eq!(
                Cidr::parse(block).unwrap().contains(ip(addr)),
                want,
                "{block} contains {addr}"
            );
        }
    }

    #[test]
    fn bad_blocks_are_refused() {
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.1/8",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
        assert!(validate("Private", &[]).is_err());
        assert!(validate("Internet", &["10.0.0.0/8".into()]).is_err());
        validate("VPC", &["10.0.0.0/8".into(), "fd00::/8".into()]).unwrap();
    }

    #[test]
    fn network_types_admit_their_own_endpoint_only() {
        use EndpointKind::{Internet, Private};
        for (network_type, private, internet) in [
            ("Private", true, false),
            ("VPC", true, false),
            ("Public", false, true),
            ("private", false, false),
            ("Internet", false, false),
            ("", false, false),
        ] {
            assert_eq!(
                admits_endpoint(network_type, Private),
                private,
                "{network_type:?} on the private endpoint"
            );
            assert_eq!(
                admits_endpoint(network_type, Internet),
                internet,
                "{network_type:?} on the Internet endpoint"
            );
        }
        // Every type a rule may be created with admits exactly one endpoint.
        for t in NETWORK_TYPES {
            assert_ne!(
                admits_endpoint(t, Private),
                admits_endpoint(t, Internet),
                "{t}"
            );
        }
    }

    proptest! {
        #[test]
        fn v4_block_membership_matches_arithmetic(net in any::<u32>(), prefix in 0u8..=32, host in any::<u32>()) {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            let block = Cidr::parse(&format!("{}/{prefix}", Ipv4Addr::from(net & m))).unwrap();
            let want = (host & m) == (net & m);
            prop_assert_eq!(block.contains(IpAddr::V4(Ipv4Addr::from(host))), want);
            // The same address as IPv4-mapped IPv6 gives the same answer.
            prop_assert_eq!(block.contains(IpAddr::V6(Ipv4Addr::from(host).to_ipv6_mapped())), want);
        }

        #[test]
        fn v6_block_membership_matches_arithmetic(net in any::<u128>(), prefix in 0u8..=128, host in any::<u128>()) {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            let net = net & m;
            // Mapped IPv4 space is treated as IPv4; keep the network outside it.
            prop_assume!(Ipv6Addr::from(net).to_ipv4_mapped().is_none());
            prop_assume!(Ipv6Addr::from(host).to_ipv4_mapped().is_none());
            let block = Cidr::parse(&format!("{}/{prefix}", Ipv6Addr::from(net))).unwrap();
            prop_assert_eq!(block.contains(IpAddr::V6(Ipv6Addr::from(host))), (host & m) == net);
        }

        #[test]
        fn every_address_is_in_its_own_block(a in any::<u32>(), b in any::<u128>()) {
            let v4 = IpAddr::V4(Ipv4Addr::from(a));
            prop_assert!(Cidr::parse(&v4.to_string()).unwrap().contains(v4));
            let v6 = IpAddr::V6(Ipv6Addr::from(b));
            prop_assume!(Ipv6Addr::from(b).to_ipv4_mapped().is_none());
            prop_assert!(Cidr::parse(&v6.to_string()).unwrap().contains(v6));
        }
    }
}
