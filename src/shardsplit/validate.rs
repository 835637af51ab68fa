//! Checks of a ShardSplit spec beyond its schema. Column existence and
//! nullability need the server and are checked by the controller's first
//! step against information_schema.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::api::{Algorithm, KeyRange, ShardSplitSpec, ShardTargets, TableRef};
use crate::validation::{SpecErrors, is_system_schema};

pub const SHARD_PLACEHOLDER: &str = "{shard}";

pub fn validate(spec: &ShardSplitSpec) -> Result<(), SpecErrors> {
    let mut e = SpecErrors::new();
    check_table_ref(&mut e, "spec.source", &spec.source);
    e.mysql_identifier("spec.rule.column", &spec.rule.column);
    let shards = spec.rule.shards;
    if !(2..=1024).contains(&shards) {
        e.add("spec.rule.shards", format!("{shards} shards: a split needs 2 to 1024"));
    }
    match spec.rule.algorithm {
        Algorithm::Range => {
            if let Err(why) = check_ranges(&spec.rule.ranges, shards) {
                e.add("spec.rule.ranges", why);
            }
        }
        Algorithm::Hash | Algorithm::Mod => {
            if !spec.rule.ranges.is_empty() {
                e.add("spec.rule.ranges", "only the range algorithm takes ranges");
            }
        }
    }
    match resolve_targets(spec) {
        Ok(targets) => {
            let mut seen = BTreeSet::new();
            for (i, t) in targets.iter().enumerate() {
                let field = format!("spec.targets[{i}]");
                check_table_ref(&mut e, &field, t);
                if t == &spec.source {
                    e.add(&field, "is the source table itself");
                }
                if !seen.insert((&t.cluster, &t.database, &t.table)) {
                    e.add(&field, format!("{}.{} on {} is used by two shards", t.database, t.table, t.cluster));
                }
            }
        }
        Err(why) => e.add("spec.targets", why),
    }
    e.object_name("spec.routing.configMap", &spec.routing.config_map);
    e.into_result()
}

fn check_table_ref(e: &mut SpecErrors, field: &str, t: &TableRef) {
    e.object_name(&format!("{field}.cluster"), &t.cluster);
    e.mysql_identifier(&format!("{field}.database"), &t.database);
    if is_system_schema(&t.database) {
        e.add(&format!("{field}.database"), format!("{:?} is a system schema", t.database));
    }
    e.mysql_identifier(&format!("{field}.table"), &t.table);
}

/// The shard tables in shard order, from the explicit list or the template.
pub fn resolve_targets(spec: &ShardSplitSpec) -> Result<Vec<TableRef>, String> {
    let shards = spec.rule.shards.max(0) as usize;
    match &spec.targets {
        ShardTargets { list: Some(list), template: None } => {
            if list.len() != shards {
                return Err(format!("lists {} tables for {} shards", list.len(), shards));
            }
            Ok(list.clone())
        }
        ShardTargets { list: None, template: Some(t) } => {
            if !t.table.contains(SHARD_PLACEHOLDER) {
                return Err(format!("template table {:?} must contain {SHARD_PLACEHOLDER}", t.table));
            }
            Ok((0..shards)
                .map(|i| TableRef {
                    cluster: t.cluster.clone().unwrap_or_else(|| spec.source.cluster.clone()),
                    database: t.database.clone().unwrap_or_else(|| spec.source.database.clone()),
                    table: t.table.replace(SHARD_PLACEHOLDER, &i.to_string()),
                })
                .collect())
        }
        _ => Err("set exactly one of list and template".into()),
    }
}

/// Ranges must give every shard exactly one range and, sorted, run from no
/// lower bound to no upper bound with each range ending where the next
/// begins, so every key has exactly one shard.
pub fn check_ranges(ranges: &[KeyRange], shards: i32) -> Result<(), String> {
    if ranges.len() != shards.max(0) as usize {
        return Err(format!("{} ranges for {} shards: give one range per shard", ranges.len(), shards));
    }
    let mut owners = BTreeSet::new();
    for r in ranges {
        if r.shard < 0 || r.shard >= shards {
            return Err(format!("shard {} does not exist (0 to {})", r.shard, shards - 1));
        }
        if !owners.insert(r.shard) {
            return Err(format!("shard {} has two ranges", r.shard));
        }
        if let (Some(from), Some(to)) = (&r.from, &r.to)
            && compare_keys(from, to) != Ordering::Less
        {
            return Err(format!("shard {}: from {from:?} is not below to {to:?}", r.shard));
        }
    }
    let mut sorted: Vec<&KeyRange> = ranges.iter().collect();
    sorted.sort_by(|a, b| match (&a.from, &b.from) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(x), Some(y)) => compare_keys(x, y),
    });
    if sorted[0].from.is_some() {
        return Err("no range starts without `from`: keys below the first range have no shard".into());
    }
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        match (&a.to, &b.from) {
            (Some(to), Some(from)) if compare_keys(to, from) == Ordering::Equal => {}
            (Some(to), Some(from)) if compare_keys(to, from) == Ordering::Greater => {
                return Err(format!("shards {} and {} overlap at {from:?}", a.shard, b.shard));
            }
            (Some(to), Some(from)) => {
                return Err(format!(
                    "keys from {to:?} up to {from:?} have no shard (gap between shards {} and {})",
                    a.shard, b.shard
                ));
            }
            (None, _) => return Err(format!("shard {} has no `to` but is not the last range", a.shard)),
            (_, None) => return Err(format!("shard {} has no `from` but is not the first range", b.shard)),
        }
    }
    if sorted[sorted.len() - 1].to.is_some() {
        return Err("no range ends without `to`: keys above the last range have no shard".into());
    }
    Ok(())
}

/// Integer keys compare as numbers, anything else as bytes.
fn compare_keys(a: &str, b: &str) -> Ordering {
    match (a.parse::<i128>(), b.parse::<i128>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shardsplit::api::*;

    fn r(shard: i32, from: Option<&str>, to: Option<&str>) -> KeyRange {
        KeyRange { shard, from: from.map(Into::into), to: to.map(Into::into) }
    }

    fn spec() -> ShardSplitSpec {
        ShardSplitSpec {
            source: TableRef { cluster: "db".into(), database: "shop".into(), table: "orders".into() },
            rule: ShardRule { column: "customer_id".into(), algorithm: Algorithm::Hash, shards: 4, ranges: vec![] },
            targets: ShardTargets {
                list: None,
                template: Some(TargetTemplate { cluster: None, database: None, table: "orders_{shard}".into() }),
            },
            routing: Routing { config_map: "orders-routing".into() },
            postpone_completion: false,
            rollback: false,
            retire: Retire::default(),
            throttle: Default::default(),
            switch: Default::default(),
            cancel: false,
        }
    }

    #[test]
    fn template_expands_in_shard_order() {
        let t = resolve_targets(&spec()).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[3], TableRef { cluster: "db".into(), database: "shop".into(), table: "orders_3".into() });
        assert_eq!(validate(&spec()), Ok(()));
    }

    #[test]
    fn too_few_shards() {
        let mut s = spec();
        s.rule.shards = 1;
        assert!(validate(&s).unwrap_err().to_string().contains("needs 2 to 1024"));
    }

    #[test]
    fn template_needs_placeholder_and_targets_must_differ_from_source() {
        let mut s = spec();
        s.targets.template.as_mut().unwrap().table = "orders".into();
        assert!(validate(&s).unwrap_err().to_string().contains("must contain {shard}"));
        s.targets = ShardTargets { list: Some(vec![s.source.clone(), s.source.clone()]), template: None };
        s.rule.shards = 2;
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.contains("is the source table itself") && err.contains("used by two shards"), "{err}");
    }

    #[test]
    fn good_ranges() {
        assert_eq!(check_ranges(&[r(1, Some("100"), None), r(0, None, Some("100"))], 2), Ok(()));
        assert_eq!(
            check_ranges(&[r(0, None, Some("9")), r(1, Some("9"), Some("10")), r(2, Some("10"), None)], 3),
            Ok(())
        );
        assert_eq!(check_ranges(&[r(0, None, Some("m")), r(1, Some("m"), None)], 2), Ok(()));
    }

    #[test]
    fn bad_ranges() {
        for (ranges, shards, why) in [
            (vec![r(0, None, Some("100")), r(1, Some("90"), None)], 2, "overlap"),
            (vec![r(0, None, Some("100")), r(1, Some("110"), None)], 2, "have no shard"),
            (vec![r(0, Some("0"), Some("100")), r(1, Some("100"), None)], 2, "keys below the first range"),
            (vec![r(0, None, Some("100")), r(1, Some("100"), Some("200"))], 2, "keys above the last range"),
            (vec![r(0, None, Some("100")), r(0, Some("100"), None)], 2, "has two ranges"),
            (vec![r(0, None, None)], 2, "1 ranges for 2 shards"),
            (vec![r(0, None, Some("5")), r(1, Some("7"), Some("6")), r(2, Some("6"), None)], 3, "is not below"),
            (vec![r(0, None, None), r(1, None, None)], 2, "no `to` but is not the last"),
        ] {
            let err = check_ranges(&ranges, shards).unwrap_err();
            assert!(err.contains(why), "{ranges:?}: {err}");
        }
    }

    #[test]
    fn ranges_only_for_range_algorithm() {
        let mut s = spec();
        s.rule.ranges = vec![r(0, None, None)];
        assert!(validate(&s).unwrap_err().to_string().contains("only the range algorithm"));
    }
}
