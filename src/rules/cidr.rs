//! Client addresses: CIDR parsing, membership sets and the per-rule CIDR index.
//!
//! Both structures keep sorted, disjoint address ranges and answer with one binary
//! search, so a 100,000-entry blocklist costs about seventeen comparisons per request
//! and never a linear scan. IPv4-mapped IPv6 addresses and CIDRs are folded into IPv4
//! at the edge (`canonical_ip`), so `::ffff:203.0.113.9` is blocked by `203.0.113.0/24`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::bits::RuleBits;

/// The address the rules see: IPv4-mapped IPv6 becomes IPv4 (never `to_ipv4`, which
/// would also turn `::1` into `0.0.0.1`).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Parses an address or CIDR as written in a config or an `ip_file`.
///
/// A bare address is a single-host network. A CIDR with host bits set
/// (`10.0.0.1/8`) is refused rather than guessed at: the writer meant either the
/// network or the host, and a blocklist that silently covers sixteen million
/// addresses instead of one (or the reverse) is a bug.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = if text.contains('/') {
        let net = IpNet::from_str(text).map_err(|_| {
            format!(
                "`{text}` is not a CIDR; write an address with a prefix length, like 203.0.113.0/24 or 2001:db8::/32"
            )
        })?;
        if net.trunc() != net {
            return Err(format!(
                "`{text}` has host bits set; write the network `{}` or the single address",
                net.trunc()
            ));
        }
        net
    } else {
        let ip = IpAddr::from_str(text).map_err(|_| {
            format!("`{text}` is not an IP address or CIDR; write it like 192.0.2.1, 203.0.113.0/24 or 2001:db8::/32")
        })?;
        IpNet::from(ip)
    };
    Ok(canonical_net(net))
}

/// Folds an IPv4-mapped IPv6 network (`::ffff:a.b.c.d/96+`) into its IPv4 network.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Ok(mapped) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped);
    }
    net
}

/// An address range, inclusive at both ends, in one address family.
trait Address: Copy + Ord + std::fmt::Debug {
    const ZERO: Self;
    fn successor(self) -> Option<Self>;
}

impl Address for u32 {
    const ZERO: Self = 0;
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Address for u128 {
    const ZERO: Self = 0;
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
}

fn v4_range(net: &Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

fn v6_range(net: &Ipv6Net) -> (u128, u128) {
    (u128::from(net.network()), u128::from(net.broadcast()))
}

/// Sorts ranges and merges those that overlap or touch.
fn merge_ranges<T: Address>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some(last) = merged.last_mut()
            && last.1.successor().is_none_or(|next| start <= next)
        {
            last.1 = last.1.max(end);
            continue;
        }
        merged.push((start, end));
    }
    merged
}

/// Inclusive address ranges of one family.
type Ranges<T> = Vec<(T, T)>;

fn split_families(nets: impl IntoIterator<Item = IpNet>) -> (Ranges<u32>, Ranges<u128>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for net in nets {
        match canonical_net(net) {
            IpNet::V4(net) => v4.push(v4_range(&net)),
            IpNet::V6(net) => v6.push(v6_range(&net)),
        }
    }
    (v4, v6)
}

fn ranges_contain<T: Address>(ranges: &[(T, T)], address: T) -> bool {
    let after = ranges.partition_point(|&(start, _)| start <= address);
    after > 0 && address <= ranges[after - 1].1
}

/// Whether `[start, end]` lies inside one merged range (merged ranges never touch, so
/// one range is enough).
fn range_within<T: Address>(ranges: &[(T, T)], start: T, end: T) -> bool {
    let after = ranges.partition_point(|&(range_start, _)| range_start <= start);
    after > 0 && end <= ranges[after - 1].1
}

/// Whether any range meets `[start, end]`: the last range starting at or before `end`
/// must reach `start`.
fn range_overlaps<T: Address>(ranges: &[(T, T)], start: T, end: T) -> bool {
    let after = ranges.partition_point(|&(range_start, _)| range_start <= end);
    after > 0 && ranges[after - 1].1 >= start
}

/// A set of networks for yes/no membership (`trusted_proxies`, trusted-header peers).
#[derive(Debug, Clone, Default)]
pub struct IpRangeSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpRangeSet {
    /// Builds the set; overlapping networks are merged.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let (v4, v6) = split_families(nets);
        IpRangeSet {
            v4: merge_ranges(v4),
            v6: merge_ranges(v6),
        }
    }

    /// Whether the (canonicalized) address is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical_ip(ip) {
            IpAddr::V4(v4) => ranges_contain(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => ranges_contain(&self.v6, u128::from(v6)),
        }
    }

    /// Whether every address of `net` is in the set (networks may span several entries).
    pub fn contains_net(&self, net: &IpNet) -> bool {
        match canonical_net(*net) {
            IpNet::V4(net) => {
                let (start, end) = v4_range(&net);
                range_within(&self.v4, start, end)
            }
            IpNet::V6(net) => {
                let (start, end) = v6_range(&net);
                range_within(&self.v6, start, end)
            }
        }
    }

    /// Whether some address of `net` is in the set.
    pub fn overlaps_net(&self, net: &IpNet) -> bool {
        match canonical_net(*net) {
            IpNet::V4(net) => {
                let (start, end) = v4_range(&net);
                range_overlaps(&self.v4, start, end)
            }
            IpNet::V6(net) => {
                let (start, end) = v6_range(&net);
                range_overlaps(&self.v6, start, end)
            }
        }
    }

    /// Whether the set has no networks at all.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// One address family's map from address to rule set: `starts[i]` begins a run of
/// addresses that all map to `sets[set_ids[i]]`, up to the next start.
#[derive(Debug, Clone)]
struct RangeMap<T> {
    starts: Vec<T>,
    set_ids: Vec<u32>,
}

impl<T: Address> RangeMap<T> {
    /// Sweeps over every rule's merged ranges, recording the rule set in force at
    /// each boundary. `base` holds the rules that have no CIDR selector at all: they
    /// match every address.
    fn build(per_rule: Vec<(usize, Vec<(T, T)>)>, base: &RuleBits, interner: &mut SetInterner) -> Self {
        let mut events: Vec<(T, bool, usize)> = Vec::new();
        for (rule, ranges) in per_rule {
            for (start, end) in merge_ranges(ranges) {
                events.push((start, true, rule));
                if let Some(after) = end.successor() {
                    events.push((after, false, rule));
                }
            }
        }
        events.sort_unstable_by_key(|&(point, _, _)| point);

        let mut current = base.clone();
        let mut starts = vec![T::ZERO];
        let mut set_ids = vec![interner.intern(&current)];
        let mut index = 0;
        while index < events.len() {
            let point = events[index].0;
            while index < events.len() && events[index].0 == point {
                let (_, entering, rule) = events[index];
                if entering {
                    current.insert(rule);
                } else {
                    current.remove(rule);
                }
                index += 1;
            }
            let id = interner.intern(&current);
            if point == T::ZERO {
                set_ids[0] = id;
            } else if set_ids.last() != Some(&id) {
                starts.push(point);
                set_ids.push(id);
            }
        }
        RangeMap { starts, set_ids }
    }

    fn lookup(&self, address: T) -> u32 {
        let after = self.starts.partition_point(|&start| start <= address);
        self.set_ids[after - 1]
    }

    fn len(&self) -> usize {
        self.starts.len()
    }
}

/// Deduplicates rule sets so each distinct set is stored once, however many ranges
/// map to it.
#[derive(Default)]
struct SetInterner {
    ids: HashMap<RuleBits, u32>,
    sets: Vec<RuleBits>,
}

impl SetInterner {
    fn intern(&mut self, set: &RuleBits) -> u32 {
        if let Some(&id) = self.ids.get(set) {
            return id;
        }
        let id = u32::try_from(self.sets.len()).expect("fewer than 2^32 distinct rule sets");
        self.ids.insert(set.clone(), id);
        self.sets.push(set.clone());
        id
    }
}

/// The `ip` / `ip_file` selector index: client address → rules whose networks contain it
/// (plus every rule without an IP selector).
#[derive(Debug, Clone)]
pub struct CidrIndex {
    v4: RangeMap<u32>,
    v6: RangeMap<u128>,
    sets: Vec<RuleBits>,
}

impl CidrIndex {
    /// Builds the index from each rule's networks; `without_selector` are the rules
    /// that match any address.
    pub fn build<'a>(rules: impl IntoIterator<Item = (usize, &'a [IpNet])>, without_selector: &RuleBits) -> Self {
        let mut v4_rules = Vec::new();
        let mut v6_rules = Vec::new();
        for (rule, nets) in rules {
            let (v4, v6) = split_families(nets.iter().copied());
            v4_rules.push((rule, v4));
            v6_rules.push((rule, v6));
        }
        let mut interner = SetInterner::default();
        let v4 = RangeMap::build(v4_rules, without_selector, &mut interner);
        let v6 = RangeMap::build(v6_rules, without_selector, &mut interner);
        CidrIndex {
            v4,
            v6,
            sets: interner.sets,
        }
    }

    /// The rules whose IP selector admits `ip` (already canonical).
    pub fn candidates(&self, ip: IpAddr) -> &RuleBits {
        let id = match ip {
            IpAddr::V4(v4) => self.v4.lookup(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.lookup(u128::from(v6)),
        };
        &self.sets[id as usize]
    }

    /// How many range boundaries the index holds (for `check`'s summary).
    pub fn boundaries(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// Whether `ip` is in any of `nets`, by scanning: the reference the index is tested
/// against, and good enough for the handful of networks in `explain` output.
pub fn any_contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|text| parse_cidr(text).unwrap()).collect()
    }

    #[test]
    fn bare_addresses_are_single_host_networks() {
        assert_eq!(parse_cidr("192.0.2.1").unwrap().to_string(), "192.0.2.1/32");
        assert_eq!(parse_cidr("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
    }

    #[test]
    fn host_bits_set_is_an_error_naming_the_network() {
        let error = parse_cidr("10.0.0.1/8").unwrap_err();
        assert!(error.contains("10.0.0.0/8"), "{error}");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_cidr("10.0.0/8").is_err());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
        assert!(parse_cidr("").is_err());
    }

    #[test]
    fn ipv4_mapped_networks_become_ipv4() {
        assert_eq!(
            parse_cidr("::ffff:203.0.113.0/120").unwrap().to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(parse_cidr("::ffff:203.0.113.9").unwrap().to_string(), "203.0.113.9/32");
    }

    #[test]
    fn canonical_ip_folds_mapped_addresses_but_not_loopback() {
        assert_eq!(canonical_ip(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(canonical_ip(ip("::1")), ip("::1"));
    }

    #[test]
    fn range_set_membership_at_edges() {
        let set = IpRangeSet::new(nets(&["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"]));
        assert!(set.contains(ip("10.0.0.0")));
        assert!(set.contains(ip("10.255.255.255")));
        assert!(!set.contains(ip("11.0.0.0")));
        assert!(!set.contains(ip("9.255.255.255")));
        assert!(set.contains(ip("::ffff:192.168.1.7")));
        assert!(set.contains(ip("2001:db8:ffff::1")));
        assert!(!set.contains(ip("2001:db9::1")));
    }

    #[test]
    fn net_containment_spans_merged_networks() {
        let set = IpRangeSet::new(nets(&["10.0.0.0/9", "10.128.0.0/9"]));
        assert!(set.contains_net(&parse_cidr("10.0.0.0/8").unwrap()));
        assert!(set.contains_net(&parse_cidr("10.200.0.0/16").unwrap()));
        assert!(!set.contains_net(&parse_cidr("10.0.0.0/7").unwrap()));
        assert!(!set.contains_net(&parse_cidr("2001:db8::/32").unwrap()));
    }

    #[test]
    fn whole_address_space_networks_work() {
        let set = IpRangeSet::new(nets(&["0.0.0.0/0", "::/0"]));
        assert!(set.contains(ip("255.255.255.255")));
        assert!(set.contains(ip("0.0.0.0")));
        assert!(set.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
    }

    #[test]
    fn index_returns_every_rule_containing_the_address() {
        let rule0 = nets(&["10.0.0.0/8"]);
        let rule2 = nets(&["10.1.0.0/16", "192.0.2.0/24"]);
        let mut without = RuleBits::empty(4);
        without.insert(1);
        without.insert(3);
        let index = CidrIndex::build([(0, rule0.as_slice()), (2, rule2.as_slice())], &without);
        let set = |text: &str| index.candidates(ip(text)).iter().collect::<Vec<_>>();
        assert_eq!(set("10.1.2.3"), vec![0, 1, 2, 3]);
        assert_eq!(set("10.2.0.0"), vec![0, 1, 3]);
        assert_eq!(set("192.0.2.255"), vec![1, 2, 3]);
        assert_eq!(set("192.0.3.0"), vec![1, 3]);
        assert_eq!(set("::1"), vec![1, 3]);
    }

    #[test]
    fn overlapping_networks_in_one_rule_do_not_end_early() {
        let rule = nets(&["10.0.0.0/8", "10.0.0.0/24", "10.0.0.0/16"]);
        let index = CidrIndex::build([(0, rule.as_slice())], &RuleBits::empty(1));
        assert!(index.candidates(ip("10.0.1.0")).contains(0));
        assert!(index.candidates(ip("10.200.0.0")).contains(0));
        assert!(!index.candidates(ip("11.0.0.0")).contains(0));
    }
}
