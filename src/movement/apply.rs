//! Change apply: row events from the binary log, coalesced by key into
//! batches and written to the targets in one transaction per target.
//!
//! A batch keeps only each key's last image (or its removal): applying that
//! reaches the same state as applying every event in order, with one DELETE
//! and one REPLACE per target table instead of a statement per event.
//! Checkpoints land only on source transaction boundaries; a batch that
//! grows past its cap inside a huge transaction is written early, but the
//! checkpoint stays at the last boundary, and a replay rewrites it.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::Value;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;

use super::binlog::{Change, ChangeReader, Item};
use super::checkpoint::{BinlogPosition, Checkpoint, Phase};
use super::error::{At, MovementError, Result};
use super::value::literal;
use super::{Prepared, Report, Reporter, Route, snapshot, writes};
use crate::api::Progress;

/// When an apply run returns.
#[derive(Clone, Debug)]
pub enum Until {
    /// At the end of the source's binary log as it was when the run started.
    CaughtUp,
    /// At this position (a consistent point taken elsewhere).
    Position(BinlogPosition),
    /// Never: the caller drops the future to stop.
    Forever,
}

/// Pending writes, last image per key.
#[derive(Default, Debug)]
pub struct Batch {
    /// (route, shard) → key literal → row in pairs order, or None if removed.
    tables: BTreeMap<(usize, usize), BTreeMap<String, Pending>>,
    rows: usize,
}

#[derive(Debug)]
enum Pending {
    Row(Vec<Value>),
    Removed(Vec<Value>),
}

fn key_literal(route: &Route, row: &[Value]) -> String {
    let kinds = route.source_kinds();
    route.key_in_pairs.iter().map(|&i| literal(&row[i], kinds[i])).collect::<Vec<_>>().join(",")
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds one change of the table of `route_index`.
    pub fn add(&mut self, route_index: usize, route: &Route, change: Change) {
        let (before, after) = match change {
            Change::Insert(a) => (None, Some(route.project(a))),
            Change::Update(b, a) => (Some(route.project(b)), Some(route.project(a))),
            Change::Delete(b) => (Some(route.project(b)), None),
        };
        if let Some(b) = before {
            let shard = route.shard(&b);
            let key = key_literal(route, &b);
            // A row that keeps its key and shard is simply overwritten below.
            let moved = after.as_ref().is_none_or(|a| route.shard(a) != shard || key_literal(route, a) != key);
            if moved {
                let key_values: Vec<Value> = route.key_in_pairs.iter().map(|&i| b[i].clone()).collect();
                self.put(route_index, shard, key, Pending::Removed(key_values));
            }
        }
        if let Some(a) = after {
            let shard = route.shard(&a);
            let key = key_literal(route, &a);
            self.put(route_index, shard, key, Pending::Row(a));
        }
    }

    fn put(&mut self, route: usize, shard: usize, key: String, p: Pending) {
        if self.tables.entry((route, shard)).or_default().insert(key, p).is_none() {
            self.rows += 1;
        }
    }

    /// The statements per target endpoint, deletes before replaces so a
    /// replaced row never collides with one that is gone at the source.
    pub fn statements(&self, routes: &[Route]) -> BTreeMap<usize, Vec<String>> {
        let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (&(r, shard), keys) in &self.tables {
            let route = &routes[r];
            let target = &route.targets[shard];
            let kinds = route.source_kinds();
            let columns = route.target_columns();
            let key_columns: Vec<&str> = route.key_in_pairs.iter().map(|&i| columns[i]).collect();
            let key_kinds: Vec<_> = route.key_in_pairs.iter().map(|&i| kinds[i]).collect();
            let removed = keys.values().filter_map(|p| match p {
                Pending::Removed(k) => Some(k.as_slice()),
                Pending::Row(_) => None,
            });
            let rows = keys.values().filter_map(|p| match p {
                Pending::Row(r) => Some(r.as_slice()),
                Pending::Removed(_) => None,
            });
            let statements = out.entry(target.endpoint).or_default();
            statements.extend(writes::delete(&target.table, &key_columns, &key_kinds, removed));
            statements.extend(writes::replace(&target.table, &columns, &kinds, rows));
        }
        out
    }
}

/// Rows a batch may hold before it is written, even mid-transaction.
const MAX_BATCH_ROWS: usize = 20_000;
/// How long changes may wait in a batch.
const MAX_BATCH_AGE: Duration = Duration::from_millis(200);

pub async fn run(p: &Prepared, mut cp: Checkpoint, until: Until, report: &Reporter) -> Result<Checkpoint> {
    if cp.phase != Phase::Apply {
        return Err(MovementError::Checkpoint("changes can be applied only after the copy".into()));
    }
    let from = cp
        .resume_position()
        .cloned()
        .ok_or_else(|| MovementError::Checkpoint("no binary log position to apply from".into()))?;
    let mut control = p.job.source.connect().await?;
    let stop_at = match &until {
        Until::CaughtUp => Some(snapshot::position(&mut control, &p.job.source.name, p.flavor).await?),
        Until::Position(pos) => Some(pos.clone()),
        Until::Forever => None,
    };
    let reached = |pos: &BinlogPosition| stop_at.as_ref().is_some_and(|s| pos.cmp_position(s).is_ge());
    if reached(&from) {
        return Ok(cp);
    }
    let moved = p.routes.iter().map(|r| (r.source.name.clone(), r.source.columns.clone())).collect();
    let mut reader = ChangeReader::open(&p.job.source, p.flavor, p.job.options.server_id, &from, moved).await?;
    let mut conns: Vec<Option<mysql_async::Conn>> = p.job.targets.iter().map(|_| None).collect();
    let mut batch = Batch::default();
    let mut batch_started = Instant::now();
    let mut boundary = from.clone();
    let mut last_report = Instant::now();
    let mut idle = false;
    let result = loop {
        let item = match reader.next().await {
            Ok(i) => i,
            Err(e) => break Err(e),
        };
        let mut at_boundary = false;
        match item {
            Item::Rows { route, changes } => {
                idle = false;
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                for c in changes {
                    batch.add(route, &p.routes[route], c);
                }
            }
            Item::Boundary(pos) => {
                boundary = pos;
                at_boundary = true;
            }
            Item::Idle => {
                idle = true;
                at_boundary = true;
            }
        }
        let full = batch.rows() >= MAX_BATCH_ROWS;
        let due = at_boundary && (idle || reached(&boundary) || batch_started.elapsed() >= MAX_BATCH_AGE);
        if full || (due && !batch.is_empty()) {
            let note = |_: Option<String>| {};
            p.throttler().wait(&note).await;
            if let Err(e) = write(p, &mut conns, &batch).await {
                break Err(e);
            }
            batch = Batch::default();
        }
        if at_boundary && batch.is_empty() && cp.applied.as_ref() != Some(&boundary) {
            cp.applied = Some(boundary.clone());
        }
        let now = Instant::now();
        if now.duration_since(last_report) >= p.job.options.report_every || reached(&boundary) {
            last_report = now;
            report(Report::Checkpoint(cp.clone()));
            report(Report::Progress(apply_progress(&cp, reader.last_event_time, idle, p.throttler().reason())));
        }
        if batch.is_empty() && reached(&boundary) {
            break Ok(());
        }
    };
    reader.close().await;
    result?;
    report(Report::Checkpoint(cp.clone()));
    Ok(cp)
}

fn apply_progress(cp: &Checkpoint, last_event_time: u32, idle: bool, throttled: Option<String>) -> Progress {
    let now = jiff::Timestamp::now().as_second();
    let lag = if idle || last_event_time == 0 { 0 } else { (now - i64::from(last_event_time)).max(0) };
    let copied = cp.rows_copied() as i64;
    Progress {
        rows_copied: copied,
        rows_total: copied,
        percent: 100,
        rows_per_second: 0,
        eta_seconds: None,
        lag_seconds: Some(lag),
        throttled,
    }
}

/// One transaction per target endpoint.
async fn write(p: &Prepared, conns: &mut [Option<mysql_async::Conn>], batch: &Batch) -> Result<()> {
    for (ep, statements) in batch.statements(&p.routes) {
        let name = &p.job.targets[ep].name;
        if conns[ep].is_none() {
            conns[ep] = Some(p.job.targets[ep].connect().await?);
        }
        let conn = conns[ep].as_mut().expect("connected above");
        for s in &statements {
            super::writes::fits(conn, name, s).await?;
        }
        let result = async {
            conn.query_drop("START TRANSACTION").await?;
            for s in &statements {
                conn.query_drop(s).await?;
            }
            conn.query_drop("COMMIT").await
        }
        .await;
        if let Err(e) = result {
            conns[ep] = None;
            return Err(e).at(name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::movement::mapping::tests::{int, one_to_one, table};
    use crate::movement::mapping::{RowRouter, TargetTable};
    use crate::movement::schema::TableName;

    fn route() -> Route {
        let t = table("db.t", &[("id", int()), ("v", int())], &[0]);
        Route::resolve(&one_to_one("db.t", "db.t_new"), t.clone(), t).unwrap()
    }

    fn row(id: i64, v: i64) -> Vec<Value> {
        vec![Value::Int(id), Value::Int(v)]
    }

    #[test]
    fn last_image_per_key_wins() {
        let r = route();
        let mut b = Batch::default();
        b.add(0, &r, Change::Insert(row(1, 10)));
        b.add(0, &r, Change::Update(row(1, 10), row(1, 11)));
        b.add(0, &r, Change::Insert(row(2, 20)));
        b.add(0, &r, Change::Delete(row(2, 20)));
        b.add(0, &r, Change::Delete(row(3, 30)));
        assert_eq!(b.rows(), 3);
        let s = b.statements(std::slice::from_ref(&r));
        assert_eq!(
            s[&0],
            vec![
                "DELETE FROM `db`.`t_new` WHERE `id` IN (2, 3)".to_string(),
                "REPLACE INTO `db`.`t_new` (`id`, `v`) VALUES (1, 11)".to_string(),
            ]
        );
    }

    #[test]
    fn a_key_change_removes_the_old_key() {
        let r = route();
        let mut b = Batch::default();
        b.add(0, &r, Change::Update(row(1, 10), row(5, 10)));
        let s = b.statements(std::slice::from_ref(&r));
        assert_eq!(s[&0][0], "DELETE FROM `db`.`t_new` WHERE `id` IN (1)");
        assert_eq!(s[&0][1], "REPLACE INTO `db`.`t_new` (`id`, `v`) VALUES (5, 10)");
        // ...and a later insert of the old key brings it back.
        b.add(0, &r, Change::Insert(row(1, 99)));
        let s = b.statements(std::slice::from_ref(&r));
        assert_eq!(s[&0], vec!["REPLACE INTO `db`.`t_new` (`id`, `v`) VALUES (1, 99), (5, 10)".to_string()]);
    }

    #[test]
    fn a_row_that_changes_shard_moves_between_targets() {
        let t = table("db.t", &[("id", int()), ("v", int())], &[0]);
        let mut m = one_to_one("db.t", "db.t_0");
        m.targets.push(TargetTable { endpoint: 1, table: TableName::new("db", "t_1") });
        m.router = Some(RowRouter::Modulo { column: "v".into() });
        let r = Route::resolve(&m, t.clone(), t).unwrap();
        let mut b = Batch::default();
        b.add(0, &r, Change::Update(row(1, 2), row(1, 3)));
        let s = b.statements(std::slice::from_ref(&r));
        assert_eq!(s[&0], vec!["DELETE FROM `db`.`t_0` WHERE `id` IN (1)".to_string()]);
        assert_eq!(s[&1], vec!["REPLACE INTO `db`.`t_1` (`id`, `v`) VALUES (1, 3)".to_string()]);
    }

    #[test]
    fn column_mapping_applies_to_events() {
        let src = table("db.t", &[("id", int()), ("dropped", int()), ("v", int())], &[0]);
        let dst = table("db.t_new", &[("id", int()), ("v", int()), ("added", int())], &[0]);
        let r = Route::resolve(&one_to_one("db.t", "db.t_new"), src, dst).unwrap();
        let mut b = Batch::default();
        b.add(0, &r, Change::Insert(vec![Value::Int(1), Value::Int(2), Value::Int(3)]));
        let s = b.statements(std::slice::from_ref(&r));
        assert_eq!(s[&0], vec!["REPLACE INTO `db`.`t_new` (`id`, `v`) VALUES (1, 3)".to_string()]);
    }
}
