//! GTID positions of both flavors, and the one question the clustering asks
//! of them: does one server hold everything another one does?
//!
//! For MariaDB the comparison uses `gtid_binlog_state`, the last sequence
//! number per (domain, server id) pair, not `gtid_binlog_pos` (the last per
//! domain): a former primary whose last transaction `0-101-319` never reached
//! the new primary looks "behind" `0-100-424` by sequence number alone, yet
//! holds a transaction the new primary lacks. MySQL sets
//! (`uuid:1-10:12,uuid2:1-3`) keep intervals per source UUID.

use std::collections::BTreeMap;

use super::Flavor;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GtidSet {
    /// MariaDB: (domain id, server id) → last sequence number.
    MariaDb(BTreeMap<(u32, u32), u64>),
    /// MySQL: source uuid → sorted, merged, inclusive intervals.
    MySql(BTreeMap<String, Vec<(u64, u64)>>),
    /// No transactions at all (either flavor).
    #[default]
    Empty,
}

impl GtidSet {
    pub fn parse(flavor: Flavor, text: &str) -> Result<GtidSet, String> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if text.is_empty() {
            return Ok(GtidSet::Empty);
        }
        if flavor.is_mariadb() { parse_mariadb(&text) } else { parse_mysql(&text) }
    }

    /// True when every transaction in `other` is also in `self`.
    pub fn contains(&self, other: &GtidSet) -> bool {
        match (self, other) {
            (_, GtidSet::Empty) => true,
            (GtidSet::Empty, _) => false,
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => {
                b.iter().all(|(key, seq)| a.get(key).is_some_and(|mine| mine >= seq))
            }
            (GtidSet::MySql(a), GtidSet::MySql(b)) => b.iter().all(|(uuid, theirs)| {
                let Some(mine) = a.get(uuid) else { return false };
                theirs.iter().all(|&(lo, hi)| mine.iter().any(|&(mlo, mhi)| mlo <= lo && hi <= mhi))
            }),
            _ => false,
        }
    }

    /// The set without the transactions that `uuid` originated (MySQL); a
    /// MariaDB set is returned as it is.
    pub fn without_source(&self, uuid: &str) -> GtidSet {
        match self {
            GtidSet::MySql(m) => {
                let rest: BTreeMap<_, _> = m
                    .iter()
                    .filter(|(u, _)| !u.eq_ignore_ascii_case(uuid))
                    .map(|(u, i)| (u.clone(), i.clone()))
                    .collect();
                if rest.is_empty() { GtidSet::Empty } else { GtidSet::MySql(rest) }
            }
            other => other.clone(),
        }
    }

    /// A total of transactions, for picking the most advanced candidate among
    /// sets that contain one another.
    pub fn weight(&self) -> u64 {
        match self {
            GtidSet::Empty => 0,
            GtidSet::MariaDb(m) => {
                // Sequence numbers run across servers within a domain.
                let mut per_domain: BTreeMap<u32, u64> = BTreeMap::new();
                for ((domain, _), seq) in m {
                    let e = per_domain.entry(*domain).or_default();
                    *e = (*e).max(*seq);
                }
                per_domain.values().sum()
            }
            GtidSet::MySql(m) => m.values().flatten().map(|(lo, hi)| hi - lo + 1).sum(),
        }
    }
}

fn parse_mariadb(text: &str) -> Result<GtidSet, String> {
    let mut map = BTreeMap::new();
    for part in text.split(',') {
        let nums: Vec<&str> = part.split('-').collect();
        let [d, s, n] = nums.as_slice() else { return Err(format!("bad MariaDB GTID {part:?}")) };
        let domain = d.parse().map_err(|_| format!("bad domain in {part:?}"))?;
        let server = s.parse().map_err(|_| format!("bad server id in {part:?}"))?;
        let seq = n.parse().map_err(|_| format!("bad sequence number in {part:?}"))?;
        let e = map.entry((domain, server)).or_insert(0);
        *e = (*e).max(seq);
    }
    Ok(GtidSet::MariaDb(map))
}

fn parse_mysql(text: &str) -> Result<GtidSet, String> {
    let mut map: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for part in text.split(',') {
        let mut fields = part.split(':');
        let uuid = fields.next().unwrap_or_default().to_ascii_lowercase();
        if uuid.len() != 36 {
            return Err(format!("bad source uuid in {part:?}"));
        }
        let intervals = map.entry(uuid).or_default();
        for iv in fields {
            let (lo, hi) = match iv.split_once('-') {
                Some((lo, hi)) => (lo, hi),
                None => (iv, iv),
            };
            let lo: u64 = lo.parse().map_err(|_| format!("bad interval {iv:?}"))?;
            let hi: u64 = hi.parse().map_err(|_| format!("bad interval {iv:?}"))?;
            if lo > hi || lo == 0 {
                return Err(format!("bad interval {iv:?}"));
            }
            intervals.push((lo, hi));
        }
    }
    for intervals in map.values_mut() {
        intervals.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
        for &(lo, hi) in intervals.iter() {
            match merged.last_mut() {
                Some(last) if lo <= last.1 + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        *intervals = merged;
    }
    Ok(GtidSet::MySql(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIA: Flavor = Flavor::MariaDb { major: 10, minor: 11 };
    const MYSQL: Flavor = Flavor::MySql { major: 8, minor: 4 };
    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn m(s: &str) -> GtidSet {
        GtidSet::parse(MARIA, s).unwrap()
    }
    fn y(s: &str) -> GtidSet {
        GtidSet::parse(MYSQL, s).unwrap()
    }

    #[test]
    fn mariadb_containment() {
        assert!(m("0-101-10").contains(&m("0-101-9")));
        assert!(!m("0-101-9").contains(&m("0-101-10")));
        assert!(!m("0-101-9").contains(&m("0-101-5,1-102-1")), "a domain the primary lacks is errant");
        assert!(m("0-101-9, 1-102-3").contains(&m("1-102-3")));
        assert!(m("").contains(&m("")));
        assert!(!m("").contains(&m("0-1-1")));
        assert!(GtidSet::parse(MARIA, "0-1").is_err());
    }

    #[test]
    fn mariadb_errant_former_primary() {
        // The new primary replicated 0-101-318 from the old one, then wrote
        // 0-100-319..424 itself; the old primary committed 0-101-319 alone.
        let new_primary = m("0-101-318,0-100-424");
        assert!(!new_primary.contains(&m("0-101-319")), "errant despite the lower sequence number");
        assert!(new_primary.contains(&m("0-101-318")));
        assert!(new_primary.contains(&m("0-101-300,0-100-400")));
        assert_eq!(new_primary.weight(), 424);
    }

    #[test]
    fn mysql_containment_and_merging() {
        let a = y(&format!("{U1}:1-10:12-20,{U2}:1-3"));
        assert!(a.contains(&y(&format!("{U1}:2-5:15"))));
        assert!(!a.contains(&y(&format!("{U1}:11"))), "a gap is missing");
        assert!(!a.contains(&y(&format!("{U2}:4"))));
        assert!(y(&format!("{U1}:1-5,{U1}:6-8")).contains(&y(&format!("{U1}:1-8"))), "adjacent intervals merge");
        assert_eq!(a.weight(), 10 + 9 + 3);
        assert!(GtidSet::parse(MYSQL, "nope:1-2").is_err());
        assert!(GtidSet::parse(MYSQL, &format!("{U1}:5-2")).is_err());
    }

    #[test]
    fn flavors_do_not_mix() {
        assert!(!m("0-1-5").contains(&y(&format!("{U1}:1"))));
    }

    #[test]
    fn a_source_can_be_left_out() {
        let set =
            GtidSet::parse(MYSQL, "aaaaaaaa-0000-0000-0000-000000000001:1-10,bbbbbbbb-0000-0000-0000-000000000002:1-3")
                .unwrap();
        let only_b = GtidSet::parse(MYSQL, "bbbbbbbb-0000-0000-0000-000000000002:1-3").unwrap();
        assert_eq!(set.without_source("AAAAAAAA-0000-0000-0000-000000000001"), only_b);
        assert_eq!(only_b.without_source("bbbbbbbb-0000-0000-0000-000000000002"), GtidSet::Empty);
    }
}
