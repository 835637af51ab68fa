//! Where each source row goes: which target table (through a row router when
//! one table is split into shards) and which target column takes which
//! source column (when the schema changes on the way).

use mysql_async::Value;
use serde::{Deserialize, Serialize};

use super::error::{MovementError, Result};
use super::schema::{Kind, TableName, TableSchema};
use crate::mysql::sql::quote_ident;

/// One source table and where its rows go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableMapping {
    pub source: TableName,
    /// One target, or one per shard in router order.
    pub targets: Vec<TargetTable>,
    #[serde(default)]
    pub columns: ColumnMapping,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RowRouter>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetTable {
    /// Index into the job's target endpoints.
    pub endpoint: usize,
    pub table: TableName,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ColumnMapping {
    /// Every target column takes the source column of the same name; target
    /// columns the source lacks keep their defaults, source columns the
    /// target lacks are dropped.
    #[default]
    SameNames,
    /// Exactly these target ← source pairs.
    Explicit(Vec<ColumnPair>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnPair {
    pub target: String,
    pub source: String,
}

/// Picks the shard of a row from one column. Every rule also has an SQL
/// form ([`Route::shard_sql`]), so a checksum can ask the source which rows
/// belong to which shard and the two never disagree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RowRouter {
    /// Shard = value mod number of targets (never negative).
    Modulo { column: String },
    /// Shard = CRC32 of the value's canonical bytes mod number of targets:
    /// integers as decimal text, strings as stored. That is SQL's
    /// `CRC32(column) % n`, and zlib's crc32 in any client.
    Hash { column: String },
    /// Shard i takes values below `upper_bounds[i]`; the last shard takes the
    /// rest, so there is one bound fewer than targets.
    Ranges { column: String, upper_bounds: Vec<i64> },
}

/// A mapping checked against the real tables: positions instead of names.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub source: TableSchema,
    pub targets: Vec<TargetTable>,
    /// The target table's definition (shards share one definition).
    pub target: TableSchema,
    /// (source position, target position) for every moved column, in target
    /// order. Generated target columns are left out: the target computes them.
    pub pairs: Vec<(usize, usize)>,
    /// The source key columns' positions in `pairs`, which is where the
    /// target's copy of the key sits in a mapped row.
    pub key_in_pairs: Vec<usize>,
    router: Option<(usize, RouterRule)>,
}

#[derive(Clone, Debug, PartialEq)]
enum RouterRule {
    Modulo(u64),
    Hash(u64),
    Ranges(Vec<i64>),
}

impl Route {
    /// Checks `mapping` against the loaded schemas.
    pub fn resolve(mapping: &TableMapping, source: TableSchema, target: TableSchema) -> Result<Route> {
        let err = |reason: String| MovementError::Table { table: mapping.source.to_string(), reason };
        if mapping.targets.is_empty() {
            return Err(err("no target table".into()));
        }
        let named: Vec<(String, String)> = match &mapping.columns {
            ColumnMapping::SameNames => target
                .columns
                .iter()
                .filter(|c| source.position(&c.name).is_some())
                .map(|c| (c.name.clone(), c.name.clone()))
                .collect(),
            ColumnMapping::Explicit(pairs) => pairs.iter().map(|p| (p.target.clone(), p.source.clone())).collect(),
        };
        let mut pairs = Vec::new();
        for (t, s) in named {
            let sp = source.position(&s).ok_or_else(|| err(format!("source has no column {s}")))?;
            let tp = target.position(&t).ok_or_else(|| err(format!("target {} has no column {t}", target.name)))?;
            if target.columns[tp].generated {
                continue;
            }
            pairs.push((sp, tp));
        }
        if pairs.is_empty() {
            return Err(err(format!("no column of {} maps to {}", source.name, target.name)));
        }
        // Copy and apply write by the target's key, so it must be the source
        // key carried over; otherwise a changed row could not be found again.
        let mut key_in_pairs = Vec::new();
        for &k in &source.key {
            let i = pairs.iter().position(|(s, _)| *s == k).ok_or_else(|| {
                err(format!("key column {} is not copied to {}", source.columns[k].name, target.name))
            })?;
            key_in_pairs.push(i);
        }
        let mut target_key: Vec<usize> = key_in_pairs.iter().map(|&i| pairs[i].1).collect();
        let mut want = target.key.clone();
        target_key.sort();
        want.sort();
        if target_key != want {
            return Err(err(format!(
                "the key of {} ({}) must be the source's key ({}) carried over",
                target.name,
                names(&target, &target.key),
                names(&source, &source.key)
            )));
        }
        let router = match &mapping.router {
            None if mapping.targets.len() == 1 => None,
            None => return Err(err("several targets need a row router".into())),
            Some(r) => {
                let n = mapping.targets.len() as u64;
                let (column, rule) = match r {
                    RowRouter::Modulo { column } => (column, RouterRule::Modulo(n)),
                    RowRouter::Hash { column } => (column, RouterRule::Hash(n)),
                    RowRouter::Ranges { column, upper_bounds } => {
                        if upper_bounds.len() + 1 != mapping.targets.len() {
                            return Err(err(format!(
                                "{} range bounds for {} targets; there must be one fewer bound than targets",
                                upper_bounds.len(),
                                mapping.targets.len()
                            )));
                        }
                        if upper_bounds.windows(2).any(|w| w[0] >= w[1]) {
                            return Err(err("range bounds must increase".into()));
                        }
                        (column, RouterRule::Ranges(upper_bounds.clone()))
                    }
                };
                let pos = source.position(column).ok_or_else(|| err(format!("router column {column} not found")))?;
                let col = &source.columns[pos];
                let fits = match rule {
                    RouterRule::Hash(_) => router_hashable(&col.kind),
                    _ => matches!(col.kind, Kind::Int { .. }),
                };
                if !fits || col.nullable {
                    let what = if matches!(rule, RouterRule::Hash(_)) { "integer or string" } else { "integer" };
                    return Err(err(format!("router column {column} must be a NOT NULL {what}")));
                }
                // Rows travel in `pairs` order, so the router reads from there.
                let pos = pairs
                    .iter()
                    .position(|(s, _)| *s == pos)
                    .ok_or_else(|| err(format!("router column {column} must be copied to the targets")))?;
                Some((pos, rule))
            }
        };
        Ok(Route { source, targets: mapping.targets.clone(), target, pairs, key_in_pairs, router })
    }

    /// A source row (all columns, as a row event carries it) in `pairs`
    /// order, which is how copy reads rows and how they are written.
    pub fn project(&self, full_row: Vec<Value>) -> Vec<Value> {
        let mut full: Vec<Option<Value>> = full_row.into_iter().map(Some).collect();
        self.pairs.iter().map(|(s, _)| full.get_mut(*s).and_then(Option::take).unwrap_or(Value::NULL)).collect()
    }

    /// The key values of a row in `pairs` order.
    pub fn key_of<'r>(&self, row: &'r [Value]) -> Vec<&'r Value> {
        self.key_in_pairs.iter().map(|&i| &row[i]).collect()
    }

    /// The shard (index into `targets`) of a row in `pairs` order.
    pub fn shard(&self, row: &[Value]) -> usize {
        let Some((pos, rule)) = &self.router else { return 0 };
        let kind = &self.source.columns[self.pairs[*pos].0].kind;
        let value = row.get(*pos).unwrap_or(&Value::NULL);
        match rule {
            RouterRule::Hash(n) => (crc32fast::hash(&canonical_bytes(value, kind)) as u64 % n) as usize,
            RouterRule::Modulo(n) => integer(value, kind).rem_euclid(i128::from(*n)) as usize,
            RouterRule::Ranges(bounds) => {
                let v = integer(value, kind);
                bounds.iter().position(|b| v < i128::from(*b)).unwrap_or(bounds.len())
            }
        }
    }

    /// The SQL expression, on the source table, of the shard a row goes to;
    /// None without a router.
    pub fn shard_sql(&self) -> Option<String> {
        let (pos, rule) = self.router.as_ref()?;
        let col = quote_ident(&self.source.columns[self.pairs[*pos].0].name);
        Some(match rule {
            RouterRule::Hash(n) => format!("CRC32({col}) % {n}"),
            RouterRule::Modulo(n) => format!("MOD(MOD({col}, {n}) + {n}, {n})"),
            RouterRule::Ranges(bounds) => {
                let arms: String =
                    bounds.iter().enumerate().map(|(i, b)| format!(" WHEN {col} < {b} THEN {i}")).collect();
                format!("CASE{arms} ELSE {} END", bounds.len())
            }
        })
    }

    /// The target's column names in `pairs` order.
    pub fn target_columns(&self) -> Vec<&str> {
        self.pairs.iter().map(|(_, t)| self.target.columns[*t].name.as_str()).collect()
    }

    /// The source's column names in `pairs` order.
    pub fn source_columns(&self) -> Vec<&str> {
        self.pairs.iter().map(|(s, _)| self.source.columns[*s].name.as_str()).collect()
    }

    /// The source's kinds in `pairs` order: values arrive in the source's
    /// terms (an enum index means the source's member list, text bytes are in
    /// the source's charset) and the target converts on assignment.
    pub fn source_kinds(&self) -> Vec<&Kind> {
        self.pairs.iter().map(|(s, _)| &self.source.columns[*s].kind).collect()
    }
}

/// Columns a hash router accepts: the ones whose canonical bytes are the
/// same in a row event, a SELECT and SQL's `CRC32()`.
pub fn router_hashable(kind: &Kind) -> bool {
    matches!(kind, Kind::Int { .. } | Kind::Text { .. } | Kind::Binary)
}

/// An integer key as the source holds it. Row events on MariaDB carry an
/// unsigned column's value as its signed bit pattern, so the width says how
/// to read it back.
fn integer(v: &Value, kind: &Kind) -> i128 {
    match (v, kind) {
        (Value::Int(i), Kind::Int { bytes, unsigned: true }) if *i < 0 => {
            let bits = u32::from(*bytes) * 8;
            i128::from(*i) + (1i128 << bits)
        }
        (Value::Int(i), _) => i128::from(*i),
        (Value::UInt(u), _) => i128::from(*u),
        (Value::Bytes(b), _) => std::str::from_utf8(b).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0),
        _ => 0,
    }
}

/// The bytes a hash router hashes: what SQL's `CRC32(column)` sees.
fn canonical_bytes(v: &Value, kind: &Kind) -> Vec<u8> {
    match (v, kind) {
        (Value::Bytes(_), Kind::Int { .. }) => integer(v, kind).to_string().into_bytes(),
        (Value::Bytes(b), _) => b.clone(),
        (Value::Int(_) | Value::UInt(_), _) => integer(v, kind).to_string().into_bytes(),
        _ => Vec::new(),
    }
}

fn names(t: &TableSchema, positions: &[usize]) -> String {
    positions.iter().map(|&p| t.columns[p].name.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::movement::schema::tests::column;

    pub fn int() -> Kind {
        Kind::Int { bytes: 8, unsigned: false }
    }

    pub fn table(name: &str, cols: &[(&str, Kind)], key: &[usize]) -> TableSchema {
        TableSchema {
            name: TableName::parse(name).unwrap(),
            columns: cols.iter().map(|(n, k)| column(n, k.clone())).collect(),
            key: key.to_vec(),
            estimated_rows: 0,
        }
    }

    pub fn one_to_one(src: &str, dst: &str) -> TableMapping {
        TableMapping {
            source: TableName::parse(src).unwrap(),
            targets: vec![TargetTable { endpoint: 0, table: TableName::parse(dst).unwrap() }],
            columns: ColumnMapping::SameNames,
            router: None,
        }
    }

    #[test]
    fn same_names_skips_columns_one_side_lacks() {
        let src = table("a.t", &[("id", int()), ("old", int()), ("v", int())], &[0]);
        let dst = table("a.t2", &[("v", int()), ("id", int()), ("new", int())], &[1]);
        let r = Route::resolve(&one_to_one("a.t", "a.t2"), src, dst).unwrap();
        assert_eq!(r.pairs, vec![(2, 0), (0, 1)]);
        assert_eq!(r.key_in_pairs, vec![1]);
        let row = r.project(vec![Value::Int(7), Value::Int(8), Value::Int(9)]);
        assert_eq!(row, vec![Value::Int(9), Value::Int(7)], "v then id, as the target lists them");
        assert_eq!(r.key_of(&row), vec![&Value::Int(7)]);
        assert_eq!(r.target_columns(), vec!["v", "id"]);
    }

    #[test]
    fn explicit_renames_and_refusals() {
        let src = table("a.t", &[("id", int()), ("name", int())], &[0]);
        let dst = table("a.t2", &[("id", int()), ("full_name", int())], &[0]);
        let mut m = one_to_one("a.t", "a.t2");
        m.columns = ColumnMapping::Explicit(vec![
            ColumnPair { target: "id".into(), source: "id".into() },
            ColumnPair { target: "full_name".into(), source: "name".into() },
        ]);
        let r = Route::resolve(&m, src.clone(), dst.clone()).unwrap();
        assert_eq!(r.pairs, vec![(0, 0), (1, 1)]);
        assert_eq!(r.project(vec![Value::Int(1), Value::Int(2)]), vec![Value::Int(1), Value::Int(2)]);

        m.columns = ColumnMapping::Explicit(vec![ColumnPair { target: "full_name".into(), source: "name".into() }]);
        let e = Route::resolve(&m, src.clone(), dst.clone()).unwrap_err().to_string();
        assert!(e.contains("key column id is not copied"), "{e}");

        let rekeyed = table("a.t2", &[("id", int()), ("full_name", int())], &[1]);
        let e = Route::resolve(&one_to_one("a.t", "a.t2"), src, rekeyed).unwrap_err().to_string();
        assert!(e.contains("must be the source's key"), "{e}");
    }

    #[test]
    fn routers_pick_shards() {
        let src = table("a.t", &[("id", int()), ("tenant", int())], &[0]);
        let mut m = one_to_one("a.t", "a.t_0");
        m.targets.push(TargetTable { endpoint: 1, table: TableName::parse("a.t_1").unwrap() });
        m.targets.push(TargetTable { endpoint: 1, table: TableName::parse("a.t_2").unwrap() });
        assert!(Route::resolve(&m, src.clone(), src.clone()).is_err(), "several targets need a router");

        m.router = Some(RowRouter::Modulo { column: "tenant".into() });
        let r = Route::resolve(&m, src.clone(), src.clone()).unwrap();
        assert_eq!(r.shard(&[Value::Int(1), Value::Int(7)]), 1);
        assert_eq!(r.shard(&[Value::Int(1), Value::Int(-1)]), 2, "negative values wrap like rem_euclid");
        assert_eq!(r.shard(&[Value::Int(1), Value::Bytes(b"9".to_vec())]), 0);

        m.router = Some(RowRouter::Ranges { column: "id".into(), upper_bounds: vec![100, 200] });
        let r = Route::resolve(&m, src.clone(), src.clone()).unwrap();
        assert_eq!([99, 100, 199, 200, 10_000].map(|v| r.shard(&[Value::Int(v), Value::Int(0)])), [0, 1, 1, 2, 2]);
        m.router = Some(RowRouter::Ranges { column: "id".into(), upper_bounds: vec![100] });
        assert!(Route::resolve(&m, src.clone(), src.clone()).is_err(), "bounds must be one fewer than targets");
        m.router = Some(RowRouter::Ranges { column: "id".into(), upper_bounds: vec![200, 100] });
        assert!(Route::resolve(&m, src.clone(), src).is_err(), "bounds must increase");
    }

    #[test]
    fn hash_routes_like_sql_crc32_and_every_rule_has_an_sql_form() {
        let text = Kind::Text { charset: "utf8mb4".into() };
        let src = table("a.t", &[("id", int()), ("customer", text.clone())], &[0]);
        let mut m = one_to_one("a.t", "a.t_0");
        for i in 1..4 {
            m.targets.push(TargetTable { endpoint: 0, table: TableName::parse(&format!("a.t_{i}")).unwrap() });
        }
        m.router = Some(RowRouter::Hash { column: "customer".into() });
        let r = Route::resolve(&m, src.clone(), src.clone()).unwrap();
        // CRC32('hello') = 907060870, which is 2 mod 4.
        assert_eq!(r.shard(&[Value::Int(1), Value::Bytes(b"hello".to_vec())]), 2);
        assert_eq!(r.shard_sql().unwrap(), "CRC32(`customer`) % 4");

        m.router = Some(RowRouter::Hash { column: "id".into() });
        let r = Route::resolve(&m, src.clone(), src.clone()).unwrap();
        let as_int = r.shard(&[Value::Int(-123), Value::NULL]);
        assert_eq!(as_int, r.shard(&[Value::Bytes(b"-123".to_vec()), Value::NULL]), "binlog and SELECT agree");
        assert_eq!(as_int, (crc32fast::hash(b"-123") % 4) as usize, "integers hash as decimal text");

        let unsigned = Kind::Int { bytes: 8, unsigned: true };
        let usrc = table("a.t", &[("id", unsigned), ("customer", text)], &[0]);
        m.router = Some(RowRouter::Modulo { column: "id".into() });
        let r = Route::resolve(&m, usrc.clone(), usrc).unwrap();
        // u64::MAX arrives from a row event as -1; it is 3 mod 4, not 1.
        assert_eq!(r.shard(&[Value::Int(-1), Value::NULL]), 3);
        assert_eq!(r.shard_sql().unwrap(), "MOD(MOD(`id`, 4) + 4, 4)");

        m.targets.truncate(3);
        m.router = Some(RowRouter::Ranges { column: "id".into(), upper_bounds: vec![100, 200] });
        let r = Route::resolve(&m, src.clone(), src.clone()).unwrap();
        assert_eq!(r.shard_sql().unwrap(), "CASE WHEN `id` < 100 THEN 0 WHEN `id` < 200 THEN 1 ELSE 2 END");

        m.router = Some(RowRouter::Modulo { column: "customer".into() });
        assert!(Route::resolve(&m, src.clone(), src).is_err(), "mod needs an integer");
    }
}
