//! Where each source row goes: which target table (through a row router when
//! one table is split into shards) and which target column takes which
//! source column (when the schema changes on the way).

use mysql_async::Value;
use serde::{Deserialize, Serialize};

use super::error::{MovementError, Result};
use super::schema::{Kind, TableName, TableSchema};

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

/// Picks the shard of a row from one integer column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RowRouter {
    /// Shard = value mod number of targets.
    Modulo { column: String },
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
                let (column, rule) = match r {
                    RowRouter::Modulo { column } => (column, RouterRule::Modulo(mapping.targets.len() as u64)),
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
                if !matches!(source.columns[pos].kind, Kind::Int { .. }) || source.columns[pos].nullable {
                    return Err(err(format!("router column {column} must be a NOT NULL integer")));
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
        let v = match row.get(*pos) {
            Some(Value::Int(i)) => i128::from(*i),
            Some(Value::UInt(u)) => i128::from(*u),
            Some(Value::Bytes(b)) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
            _ => 0,
        };
        match rule {
            RouterRule::Modulo(n) => v.rem_euclid(i128::from(*n)) as usize,
            RouterRule::Ranges(bounds) => bounds.iter().position(|b| v < i128::from(*b)).unwrap_or(bounds.len()),
        }
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
}
