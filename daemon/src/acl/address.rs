//! Remote-address whitelists (`whiteRemoteAddress`,
//! `globalWhiteRemoteAddresses`), with the forms 4.9.7's
//! `RemoteAddressStrategyFactory` accepts:
//!
//! | form | example | matches |
//! |---|---|---|
//! | blank | `""` | nothing |
//! | all | `*`, `*.*.*.*`, `*:*:*:*:*:*:*:*` | every address |
//! | one | `192.168.0.1`, `::1` | that address |
//! | list | `192.168.0.1,192.168.0.2` | any listed address |
//! | braces | `192.168.1.{1,2,3}` | the prefix with each listed ending |
//! | range | `192.168.1.1-100`, `192.168.*.*`, `10.1-5.*.*` | fixed leading parts, then the first `*` or `a-b` part |
//!
//! As in 4.9.7, the parts after a range's first `*` or `a-b` part are not
//! looked at. A pattern that 4.9.7 would refuse is an error, so a typo
//! cannot open (or silently close) a whitelist.

use std::net::IpAddr;

/// One parsed whitelist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddressPattern {
    /// Blank: matches nothing.
    Nothing,
    /// `*`: matches everything.
    Everything,
    /// One or more exact addresses.
    Set(Vec<IpAddr>),
    /// IPv4: the first `head.len()` octets fixed, the next in `low..=high`.
    RangeV4 { head: Vec<u8>, low: u8, high: u8 },
    /// IPv6: the first `head.len()` groups fixed, the next in `low..=high`.
    RangeV6 { head: Vec<u16>, low: u16, high: u16 },
}

impl AddressPattern {
    /// Parses one entry; the error names the pattern.
    pub(crate) fn parse(text: &str) -> Result<AddressPattern, String> {
        let text = text.trim();
        let bad = |why: &str| format!("bad remote address pattern {text:?}: {why}");
        if text.is_empty() {
            return Ok(AddressPattern::Nothing);
        }
        if matches!(text, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
            return Ok(AddressPattern::Everything);
        }
        if text.ends_with('}') {
            let open = text.rfind('{').ok_or_else(|| bad("'}' without '{'"))?;
            let (prefix, list) = (&text[..open], &text[open + 1..text.len() - 1]);
            let sep = if prefix.contains(':') { ':' } else { '.' };
            if !prefix.ends_with(sep) {
                return Err(bad("'{' must start the last part"));
            }
            let addrs = list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|end| parse_ip(&format!("{prefix}{}", end.trim())).ok_or_else(|| bad(end)))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(AddressPattern::Set(addrs));
        }
        if text.contains(',') {
            let addrs = text
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|a| parse_ip(a.trim()).ok_or_else(|| bad(a)))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(AddressPattern::Set(addrs));
        }
        if text.contains('*') || text.contains('-') {
            return if text.contains(':') {
                parse_range_v6(text).map_err(|why| bad(&why))
            } else {
                parse_range_v4(text).map_err(|why| bad(&why))
            };
        }
        parse_ip(text)
            .map(|ip| AddressPattern::Set(vec![ip]))
            .ok_or_else(|| bad("not an IP address"))
    }

    /// Whether `addr` (a peer's address) is whitelisted.
    pub(crate) fn matches(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        match self {
            AddressPattern::Nothing => false,
            AddressPattern::Everything => true,
            AddressPattern::Set(set) => set.contains(&addr),
            AddressPattern::RangeV4 { head, low, high } => match addr {
                IpAddr::V4(v4) => {
                    let octets = v4.octets();
                    octets[..head.len()] == head[..] && (*low..=*high).contains(&octets[head.len()])
                }
                IpAddr::V6(_) => false,
            },
            AddressPattern::RangeV6 { head, low, high } => match addr {
                IpAddr::V6(v6) => {
                    let groups = v6.segments();
                    groups[..head.len()] == head[..] && (*low..=*high).contains(&groups[head.len()])
                }
                IpAddr::V4(_) => false,
            },
        }
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// `a.b.c.d` where the first `*` or `x-y` part (the second to the fourth)
/// is the range and the parts before it are fixed.
fn parse_range_v4(text: &str) -> Result<AddressPattern, String> {
    let parts: Vec<&str> = text.split('.').map(str::trim).collect();
    if parts.len() != 4 {
        return Err("an IPv4 range has four parts".into());
    }
    for index in 1..4 {
        let Some((low, high)) = range_part(parts[index], 10, 255)? else {
            continue;
        };
        let head = parts[..index]
            .iter()
            .map(|p| {
                p.parse::<u8>()
                    .map_err(|_| format!("{p:?} is not an octet"))
            })
            .collect::<Result<Vec<u8>, _>>()?;
        let (low, high) = (u8::try_from(low), u8::try_from(high));
        return Ok(AddressPattern::RangeV4 {
            head,
            low: low.expect("range_part checked the bound"),
            high: high.expect("range_part checked the bound"),
        });
    }
    Err("no '*' or 'a-b' part after the first".into())
}

/// IPv6 with `*` or `x-y` (hex) in one of its last two groups, the groups
/// after it `*`.
fn parse_range_v6(text: &str) -> Result<AddressPattern, String> {
    let star = text.find('*');
    if star.is_some_and(|at| at != text.len() - 1) {
        return Err("'*' must end the pattern".into());
    }
    let mut groups: Vec<&str> = Vec::new();
    match text.split_once("::") {
        Some((front, back)) => {
            let front: Vec<&str> = front.split(':').filter(|g| !g.is_empty()).collect();
            let back: Vec<&str> = back.split(':').filter(|g| !g.is_empty()).collect();
            let fill = 8usize
                .checked_sub(front.len() + back.len())
                .ok_or("more than eight groups")?;
            groups.extend(front);
            groups.extend(std::iter::repeat_n("0", fill));
            groups.extend(back);
        }
        None => groups.extend(text.split(':')),
    }
    if groups.len() != 8 {
        return Err("an IPv6 range has eight groups".into());
    }
    for (index, group) in groups.iter().enumerate().skip(1) {
        let Some((low, high)) = range_part(group, 16, 0xFFFF)? else {
            continue;
        };
        if groups[index + 1..].iter().any(|g| g.trim() != "*") {
            return Err("only '*' may follow the range".into());
        }
        let head = groups[..index]
            .iter()
            .map(|g| u16::from_str_radix(g.trim(), 16).map_err(|_| format!("{g:?} is not a group")))
            .collect::<Result<Vec<u16>, _>>()?;
        return Ok(AddressPattern::RangeV6 {
            head,
            low: u16::try_from(low).expect("range_part checked the bound"),
            high: u16::try_from(high).expect("range_part checked the bound"),
        });
    }
    Err("no '*' or 'a-b' group after the first".into())
}

/// A `*` or `low-high` part as bounds, `None` for a plain part. A range
/// whose high end is 0 is a plain part in 4.9.7, and so it is here.
fn range_part(part: &str, radix: u32, max: u32) -> Result<Option<(u32, u32)>, String> {
    let part = part.trim();
    if part == "*" {
        return Ok(Some((0, max)));
    }
    let Some((low, high)) = part.split_once('-') else {
        return Ok(None);
    };
    let num = |s: &str| {
        u32::from_str_radix(s.trim(), radix)
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("{part:?} is not a range of 0 to {max}"))
    };
    let (low, high) = (num(low)?, num(high)?);
    if low > high {
        return Err(format!("{part:?} runs backwards"));
    }
    Ok((high > 0).then_some((low, high)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn p(text: &str) -> AddressPattern {
        AddressPattern::parse(text).expect(text)
    }

    #[test]
    fn blank_matches_nothing_and_star_everything() {
        assert!(!p("").matches(v4(127, 0, 0, 1)));
        assert!(p("*").matches(v4(10, 0, 0, 1)));
        assert!(p("*.*.*.*").matches("::1".parse().expect("ip")));
    }

    #[test]
    fn one_list_and_braces() {
        assert!(p("192.168.0.1").matches(v4(192, 168, 0, 1)));
        assert!(!p("192.168.0.1").matches(v4(192, 168, 0, 2)));
        let list = p("10.0.0.1, 10.0.0.2");
        assert!(list.matches(v4(10, 0, 0, 2)) && !list.matches(v4(10, 0, 0, 3)));
        let braces = p("192.168.1.{1,2,3}");
        assert!(braces.matches(v4(192, 168, 1, 3)) && !braces.matches(v4(192, 168, 1, 4)));
        assert!(p("::1").matches(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    fn ranges_fix_the_leading_parts_and_ignore_what_follows() {
        let r = p("192.168.1.1-100");
        assert!(r.matches(v4(192, 168, 1, 100)) && !r.matches(v4(192, 168, 1, 101)));
        assert!(!r.matches(v4(192, 168, 2, 50)));
        let star = p("192.168.*.*");
        assert!(star.matches(v4(192, 168, 7, 9)) && !star.matches(v4(192, 169, 7, 9)));
        // As 4.9.7: only the first range part counts.
        assert!(p("10.1-5.9.9").matches(v4(10, 3, 200, 1)));
        let v6 = p("2001:db8::1-ff:*");
        assert!(v6.matches("2001:db8::10:1".parse().expect("ip")));
        assert!(!v6.matches("2001:db8::100:1".parse().expect("ip")));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_patterns() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert!(p("127.0.0.1").matches(mapped));
    }

    #[test]
    fn refuses_what_4_9_7_refuses() {
        for bad in [
            "300.1.1.1",
            "1.2.3",
            "1.2.3.5-2",
            "*.1.2.3",
            "not-an-ip",
            "1.2.3.{x}",
            "1:*:3::",
        ] {
            assert!(AddressPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
