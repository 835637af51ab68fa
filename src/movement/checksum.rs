//! Comparing source and targets at one consistent point: the source is read
//! inside a snapshot, the change apply is brought to exactly that snapshot's
//! position, and both sides are checksummed range by range on the key with
//! `COUNT(*)` and `BIT_XOR(CRC32(...))`. A table split into shards is
//! compared shard by shard: the source groups each range by the router's SQL
//! form, so every shard is checked against exactly the rows that route to it.
//!
//! Values are compared as text in one charset, and a target column whose
//! type changed is cast back to the source's type first, so collations and
//! number formatting do not produce false mismatches. A mismatching range is
//! compared row by row to name the differing keys.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use serde::{Deserialize, Serialize};

use super::apply::{self, Until};
use super::checkpoint::{BinlogPosition, Checkpoint};
use super::chunk::{self, ChunkSizer};
use super::error::{At, Result};
use super::schema::{Column, Kind};
use super::value::literal;
use super::{Prepared, Reporter, Route, snapshot};
use crate::mysql::sql::quote_ident;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChecksumReport {
    /// The source position both sides were compared at.
    pub at: BinlogPosition,
    pub tables: Vec<TableChecksum>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableChecksum {
    pub table: String,
    pub rows: u64,
    pub chunks: u64,
    pub mismatches: Vec<Mismatch>,
    /// Source rows per target, in route order (one entry without a router).
    #[serde(default)]
    pub shard_rows: Vec<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    /// The key range, as a WHERE condition on the source.
    pub range: String,
    pub source_rows: u64,
    pub target_rows: u64,
    /// Keys that differ: missing on the target, extra on it, or changed
    /// (at most `MAX_KEYS` of them).
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub changed: Vec<String>,
    /// Targets (in route order) whose rows in the range differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<usize>,
}

const MAX_KEYS: usize = 20;

impl ChecksumReport {
    pub fn is_equal(&self) -> bool {
        self.tables.iter().all(|t| t.mismatches.is_empty())
    }

    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// The differences, for a condition or an error: per table, how many
    /// chunks and keys differ, and in which targets. Counts only: key values
    /// and chunk bounds are data, and messages never carry data.
    pub fn differences(&self) -> String {
        self.tables
            .iter()
            .filter(|t| !t.mismatches.is_empty())
            .map(|t| {
                let sum = |f: fn(&Mismatch) -> usize| t.mismatches.iter().map(f).sum::<usize>();
                let (source, target): (u64, u64) =
                    t.mismatches.iter().fold((0, 0), |(s, d), m| (s + m.source_rows, d + m.target_rows));
                let mut shards: Vec<usize> = t.mismatches.iter().flat_map(|m| m.shards.iter().copied()).collect();
                shards.sort_unstable();
                shards.dedup();
                let shards = if shards.is_empty() { String::new() } else { format!(" in targets {shards:?}") };
                format!(
                    "{}: {} of {} chunks differ{shards} ({source} source rows against {target}; keys missing {}, \
                     extra {}, changed {})",
                    t.table,
                    t.mismatches.len(),
                    t.chunks,
                    sum(|m| m.missing.len()),
                    sum(|m| m.extra.len()),
                    sum(|m| m.changed.len()),
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The castable type that makes a target column print like the source's.
fn cast_type(source: &Column) -> Option<String> {
    let ty = source.column_type.to_ascii_lowercase();
    let precision =
        || ty.find('(').map(|i| ty[i..].split(')').next().unwrap_or("").to_string() + ")").unwrap_or_default();
    Some(match &source.kind {
        Kind::Int { unsigned: true, .. } => "UNSIGNED".into(),
        Kind::Int { unsigned: false, .. } | Kind::Year => "SIGNED".into(),
        Kind::Decimal => format!("DECIMAL{}", precision()),
        Kind::Double => "DOUBLE".into(),
        Kind::Date => "DATE".into(),
        Kind::DateTime | Kind::Timestamp => format!("DATETIME{}", precision()),
        Kind::Time => format!("TIME{}", precision()),
        _ => return None,
    })
}

/// The per-column expressions on each side.
pub fn expressions(route: &Route) -> (Vec<String>, Vec<String>) {
    let mut src = Vec::new();
    let mut tgt = Vec::new();
    for &(s, t) in &route.pairs {
        let (sc, tc) = (&route.source.columns[s], &route.target.columns[t]);
        let textual = |k: &Kind| matches!(k, Kind::Text { .. } | Kind::Enum(_) | Kind::Set(_) | Kind::Json);
        let (sn, tn) = (quote_ident(&sc.name), quote_ident(&tc.name));
        let same = sc.kind == tc.kind && sc.column_type.eq_ignore_ascii_case(&tc.column_type);
        // Same type and charset: the bytes compare as they are. Converting
        // every value would double the cost of a checksum for nothing.
        if same {
            src.push(sn);
            tgt.push(tn);
        } else if textual(&sc.kind) || textual(&tc.kind) {
            src.push(format!("CONVERT({sn} USING utf8mb4)"));
            tgt.push(format!("CONVERT({tn} USING utf8mb4)"));
        } else {
            match cast_type(sc) {
                Some(cast) => {
                    src.push(format!("CAST({sn} AS {cast})"));
                    tgt.push(format!("CAST({tn} AS {cast})"));
                }
                None => {
                    src.push(sn);
                    tgt.push(tn);
                }
            }
        }
    }
    (src, tgt)
}

/// One row's checksum expression: the values, then which of them are NULL
/// (CONCAT_WS skips NULLs, so ('a', NULL) and (NULL, 'a') would otherwise
/// look alike).
pub fn row_crc(exprs: &[String]) -> String {
    let nulls = exprs.iter().map(|e| format!("ISNULL({e})")).collect::<Vec<_>>().join(", ");
    format!("CRC32(CONCAT_WS('#', {}, CONCAT({nulls})))", exprs.join(", "))
}

pub async fn verify(p: &Prepared, cp: Checkpoint, report: &Reporter) -> Result<(Checkpoint, ChecksumReport)> {
    let names: Vec<_> = p.routes.iter().map(|r| &r.source.name).collect();
    let mut snap = snapshot::take(&p.job.source, p.flavor, &names, 1).await?;
    let at = snap.position.clone();
    let cp = apply::run(p, cp, Until::Position(at.clone()), report).await?;
    let mut src = snap.readers.pop().expect("one reader");
    let mut targets: Vec<Conn> = Vec::new();
    for t in &p.job.targets {
        targets.push(t.connect().await?);
    }
    let mut out = ChecksumReport { at, tables: vec![] };
    for route in &p.routes {
        out.tables.push(table(p, route, &mut src, &mut targets).await?);
    }
    let _ = src.query_drop("COMMIT").await;
    Ok((cp, out))
}

/// Compares source and targets when the source cannot change: its writes
/// to the moved tables are fenced, and the targets hold every change up to
/// `at`. No snapshot is needed, so the tables are compared at once, each on
/// its own connections: this runs while applications wait.
pub async fn compare_fenced(p: &Prepared, at: BinlogPosition) -> Result<ChecksumReport> {
    let tables = p.routes.iter().map(|route| async move {
        let mut src = p.job.source.connect().await?;
        let mut targets: Vec<Conn> = Vec::new();
        for t in &p.job.targets {
            targets.push(t.connect().await?);
        }
        let result = table(p, route, &mut src, &mut targets).await;
        let _ = src.disconnect().await;
        for t in targets {
            let _ = t.disconnect().await;
        }
        result
    });
    let tables = futures::future::try_join_all(tables).await?;
    Ok(ChecksumReport { at, tables })
}

async fn table(p: &Prepared, route: &Route, src: &mut Conn, targets: &mut [Conn]) -> Result<TableChecksum> {
    let (src_exprs, tgt_exprs) = expressions(route);
    let (src_crc, tgt_crc) = (row_crc(&src_exprs), row_crc(&tgt_exprs));
    let kinds = route.source_kinds();
    let src_cols = route.source_columns();
    let tgt_cols = route.target_columns();
    let src_key: Vec<&str> = route.key_in_pairs.iter().map(|&i| src_cols[i]).collect();
    let tgt_key: Vec<&str> = route.key_in_pairs.iter().map(|&i| tgt_cols[i]).collect();
    let key_kinds: Vec<&Kind> = route.key_in_pairs.iter().map(|&i| kinds[i]).collect();
    let source_name = &p.job.source.name;
    let mut result = TableChecksum { table: route.source.name.to_string(), ..Default::default() };
    let mut sizer = ChunkSizer::new(Duration::from_millis(300), 100_000);
    let mut lo: Option<Vec<Value>> = None;
    loop {
        let n = sizer.rows();
        let after = |cols: &[&str]| lo.as_ref().map(|k| chunk::after(cols, &key_kinds, k));
        let start = tokio::time::Instant::now();
        let bound_sql = format!(
            "SELECT {} FROM {}{} ORDER BY {} LIMIT 1 OFFSET {}",
            chunk::order_by(&src_key),
            route.source.name.sql(),
            after(&src_key).map(|a| format!(" WHERE {a}")).unwrap_or_default(),
            chunk::order_by(&src_key),
            n - 1
        );
        let hi: Option<Vec<Value>> = src.exec_first::<Row, _, _>(bound_sql, ()).await.at(source_name)?.map(Row::unwrap);
        let range = |cols: &[&str]| {
            let mut terms: Vec<String> = after(cols).into_iter().collect();
            if let Some(h) = &hi {
                terms.push(chunk::upto(cols, &key_kinds, h));
            }
            if terms.is_empty() { "1=1".to_string() } else { terms.join(" AND ") }
        };
        let (src_range, tgt_range) = (range(&src_key), range(&tgt_key));
        let shards = route.targets.len();
        // With a router each shard is compared with the source rows that
        // route to it, so a row in the wrong shard is a mismatch too.
        let shard_sql = route.shard_sql();
        let source_sum = async {
            let mut sums = vec![(0u64, 0u64); shards];
            let table = route.source.name.sql();
            let sql = match &shard_sql {
                Some(expr) => format!(
                    "SELECT {expr}, COUNT(*), COALESCE(BIT_XOR({src_crc}), 0) FROM {table} WHERE {src_range} GROUP BY 1"
                ),
                None => format!("SELECT 0, COUNT(*), COALESCE(BIT_XOR({src_crc}), 0) FROM {table} WHERE {src_range}"),
            };
            let rows: Vec<(u64, u64, u64)> = src.query(sql).await.at(source_name)?;
            for (shard, r, c) in rows {
                // The expression's range is 0..shards by construction.
                if let Some(slot) = sums.get_mut(shard as usize) {
                    *slot = (r, c);
                }
            }
            Ok::<_, super::MovementError>(sums)
        };
        // Source and targets are different servers (or sessions): ask them
        // at once.
        let target_sums = async {
            let mut sums = Vec::with_capacity(shards);
            for target in &route.targets {
                let sum = targets[target.endpoint]
                    .query_first::<(u64, u64), _>(format!(
                        "SELECT COUNT(*), COALESCE(BIT_XOR({tgt_crc}), 0) FROM {} WHERE {tgt_range}",
                        target.table.sql()
                    ))
                    .await
                    .at(&p.job.targets[target.endpoint].name)?
                    .unwrap_or((0, 0));
                sums.push(sum);
            }
            Ok(sums)
        };
        let (s_sums, t_sums) = tokio::try_join!(source_sum, target_sums)?;
        if result.shard_rows.len() < shards {
            result.shard_rows.resize(shards, 0);
        }
        for (i, (r, _)) in s_sums.iter().enumerate() {
            result.shard_rows[i] += r;
        }
        let s_rows: u64 = s_sums.iter().map(|(r, _)| r).sum();
        let t_rows: u64 = t_sums.iter().map(|(r, _)| r).sum();
        result.rows += s_rows;
        result.chunks += 1;
        if s_sums != t_sums {
            // The shard is part of each row's checksum here, so a row that
            // sits in the wrong shard shows as changed.
            let tagged = |crc: &str, shard: &str| format!("CONCAT({crc}, '@', {shard})");
            let rows = |crc: &str, table: &str, key: &[&str], range: &str| {
                format!("SELECT {}, {crc} FROM {table} WHERE {range}", chunk::order_by(key))
            };
            let src_tag = tagged(&src_crc, shard_sql.as_deref().unwrap_or("0"));
            let src_rows: Vec<Row> =
                src.query(rows(&src_tag, &route.source.name.sql(), &src_key, &src_range)).await.at(source_name)?;
            let mut tgt_rows = Vec::new();
            for (i, target) in route.targets.iter().enumerate() {
                let tgt_tag = tagged(&tgt_crc, &i.to_string());
                let r: Vec<Row> = targets[target.endpoint]
                    .query(rows(&tgt_tag, &target.table.sql(), &tgt_key, &tgt_range))
                    .await
                    .at(&p.job.targets[target.endpoint].name)?;
                tgt_rows.extend(r);
            }
            let mut m = diff(&key_kinds, src_rows, tgt_rows);
            m.range = src_range.clone();
            m.source_rows = s_rows;
            m.target_rows = t_rows;
            m.shards = (0..shards).filter(|&i| s_sums[i] != t_sums[i]).collect();
            result.mismatches.push(m);
        }
        sizer.observe(n, start.elapsed());
        match hi {
            Some(h) => lo = Some(h),
            None => break,
        }
    }
    Ok(result)
}

/// Keys that differ between two row lists of (key columns..., crc).
fn diff(key_kinds: &[&Kind], src: Vec<Row>, tgt: Vec<Row>) -> Mismatch {
    let index = |rows: Vec<Row>| -> BTreeMap<String, Value> {
        rows.into_iter()
            .map(|r| {
                let mut v = r.unwrap();
                let crc = v.pop().unwrap_or(Value::NULL);
                let key = v.iter().zip(key_kinds).map(|(v, k)| literal(v, k)).collect::<Vec<_>>().join(",");
                (key, crc)
            })
            .collect()
    };
    let (s, t) = (index(src), index(tgt));
    let mut m = Mismatch::default();
    for (k, crc) in &s {
        match t.get(k) {
            None if m.missing.len() < MAX_KEYS => m.missing.push(k.clone()),
            Some(c) if c != crc && m.changed.len() < MAX_KEYS => m.changed.push(k.clone()),
            _ => {}
        }
    }
    m.extra = t.keys().filter(|k| !s.contains_key(*k)).take(MAX_KEYS).cloned().collect();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_count_and_never_show_keys() {
        let m = Mismatch {
            range: "`id` >= 'secret-key-1'".into(),
            source_rows: 10,
            target_rows: 9,
            missing: vec!["secret-key-2".into()],
            extra: vec![],
            changed: vec!["secret-key-3".into(), "secret-key-4".into()],
            shards: vec![2, 0],
        };
        let report = ChecksumReport {
            at: BinlogPosition::new("b.000001", 4),
            tables: vec![
                TableChecksum {
                    table: "shop.orders".into(),
                    rows: 100,
                    chunks: 4,
                    mismatches: vec![m],
                    ..Default::default()
                },
                TableChecksum { table: "shop.lines".into(), rows: 5, chunks: 1, ..Default::default() },
            ],
        };
        let text = report.differences();
        assert_eq!(
            text,
            "shop.orders: 1 of 4 chunks differ in targets [0, 2] (10 source rows against 9; keys missing 1, extra 0, \
             changed 2)"
        );
        assert!(!text.contains("secret"), "{text}");
    }
    use crate::movement::mapping::tests::{int, one_to_one, table};

    #[test]
    fn changed_types_are_cast_back_and_text_is_compared_in_one_charset() {
        let mut src = table(
            "db.t",
            &[("id", int()), ("price", Kind::Decimal), ("name", Kind::Text { charset: "latin1".into() })],
            &[0],
        );
        src.columns[1].column_type = "decimal(10,2)".into();
        src.columns[0].column_type = "bigint(20)".into();
        let mut dst = src.clone();
        dst.name = crate::movement::TableName::new("db", "t_new");
        dst.columns[1].column_type = "decimal(12,4)".into();
        dst.columns[2].kind = Kind::Text { charset: "utf8mb4".into() };
        let r = Route::resolve(&one_to_one("db.t", "db.t_new"), src.clone(), dst).unwrap();
        let (s, t) = expressions(&r);
        assert_eq!(s, vec!["`id`", "CAST(`price` AS DECIMAL(10,2))", "CONVERT(`name` USING utf8mb4)"]);
        assert_eq!(t, vec!["`id`", "CAST(`price` AS DECIMAL(10,2))", "CONVERT(`name` USING utf8mb4)"]);
        let unchanged = Route::resolve(&one_to_one("db.t", "db.t"), src.clone(), src).unwrap();
        assert_eq!(expressions(&unchanged).0, vec!["`id`", "`price`", "`name`"], "same types compare as they are");
    }

    #[test]
    fn row_checksums_tell_nulls_apart() {
        assert_eq!(
            row_crc(&["`a`".into(), "`b`".into()]),
            "CRC32(CONCAT_WS('#', `a`, `b`, CONCAT(ISNULL(`a`), ISNULL(`b`))))"
        );
    }

    #[test]
    fn report_equality() {
        let mut r =
            ChecksumReport { tables: vec![TableChecksum { rows: 5, ..Default::default() }], ..Default::default() };
        assert!(r.is_equal());
        assert_eq!(r.rows(), 5);
        r.tables[0].mismatches.push(Mismatch::default());
        assert!(!r.is_equal());
    }
}
