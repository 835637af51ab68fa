//! The row copy: one reader per table inside a shared snapshot walks the key
//! in chunks; several writers put the chunks on the targets. A table's
//! checkpoint advances only over chunks that are written together with every
//! chunk before them, so a restart never skips a row.
//!
//! When the only target is the source server itself (a shadow table, a
//! same-server split without a router), rows need not leave the server: the
//! reader only finds each chunk's key bounds, and the writers run
//! `REPLACE INTO target SELECT ... FROM source WHERE <range>`. Those read the
//! rows as they are now rather than as of the snapshot; that is still
//! exact, because the change apply replays every event after the snapshot's
//! position with full row images, and the last image of a row wins.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::checkpoint::{Checkpoint, Phase};
use super::chunk::{self, ChunkSizer};
use super::error::{At, MovementError, Result};
use super::progress::{Meter, copy_progress};
use super::value::KeyValue;
use super::{Prepared, Report, Reporter, Route, snapshot, writes};

/// A chunk read and rendered, waiting for a writer.
struct Chunk {
    route: usize,
    seq: u64,
    rows: u64,
    /// (target endpoint, statement)
    statements: Vec<(usize, String)>,
    last_key: Vec<KeyValue>,
}

enum Done {
    Written {
        route: usize,
        seq: u64,
        rows: u64,
        last_key: Vec<KeyValue>,
        took: Duration,
    },
    /// The reader has read everything; `chunks` were sent.
    Finished {
        route: usize,
        chunks: u64,
    },
}

pub async fn run(p: &Prepared, mut cp: Checkpoint, report: &Reporter) -> Result<Checkpoint> {
    if cp.phase == Phase::Apply {
        return Ok(cp);
    }
    let pending: Vec<usize> = (0..p.routes.len())
        .filter(|&i| !cp.table(&p.routes[i].source.name.to_string()).is_some_and(|t| t.done))
        .collect();
    if !pending.is_empty() {
        if cp.snapshot.is_none() && p.job.options.owns_targets {
            empty_targets(p, &pending).await?;
        }
        let names: Vec<_> = pending.iter().map(|&i| &p.routes[i].source.name).collect();
        let snap = snapshot::take(&p.job.source, p.flavor, &names, pending.len()).await?;
        if cp.snapshot.is_none() {
            cp.snapshot = Some(snap.position.clone());
        }
        for &i in &pending {
            cp.table_mut(&p.routes[i].source.name.to_string());
        }
        report(Report::Checkpoint(cp.clone()));
        cp = copy_tables(p, cp, &pending, snap.readers, report).await?;
    }
    cp.phase = Phase::Apply;
    if cp.applied.is_none() {
        cp.applied = cp.snapshot.clone();
    }
    report(Report::Checkpoint(cp.clone()));
    Ok(cp)
}

/// With no snapshot position recorded, nothing on the targets is covered
/// by a change apply: rows that an earlier, unrecorded start copied (its
/// operator killed before the checkpoint was persisted) may since have been
/// deleted or changed at the source, before the snapshot this start takes,
/// and no event after it would correct them. So the targets start empty.
async fn empty_targets(p: &Prepared, pending: &[usize]) -> Result<()> {
    let mut tables: Vec<(usize, &super::TableName)> =
        pending.iter().flat_map(|&i| p.routes[i].targets.iter().map(|t| (t.endpoint, &t.table))).collect();
    tables.sort();
    tables.dedup();
    for (ep, table) in tables {
        let mut conn = p.job.targets[ep].connect().await?;
        conn.query_drop(format!("DELETE FROM {}", table.sql())).await.at(&p.job.targets[ep].name)?;
        let _ = conn.disconnect().await;
    }
    Ok(())
}

async fn copy_tables(
    p: &Prepared,
    mut cp: Checkpoint,
    pending: &[usize],
    readers: Vec<Conn>,
    report: &Reporter,
) -> Result<Checkpoint> {
    let opts = &p.job.options;
    let workers = opts.workers.max(1);
    // One chunk waiting per writer keeps them busy; more would only hold
    // memory.
    let (chunk_tx, chunk_rx) = mpsc::channel::<Chunk>(workers);
    let chunk_rx = Arc::new(tokio::sync::Mutex::new(chunk_rx));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let sizers: Arc<Vec<Mutex<ChunkSizer>>> =
        Arc::new(p.routes.iter().map(|_| Mutex::new(ChunkSizer::new(opts.chunk_time, opts.max_chunk_rows))).collect());
    let throttled: Arc<Mutex<Option<String>>> = Arc::default();

    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    for (&route, conn) in pending.iter().zip(readers) {
        let after = cp.table(&p.routes[route].source.name.to_string()).and_then(|t| t.after.clone());
        let reader = Reader {
            route,
            in_server: in_server(p, &p.routes[route]),
            r: p.routes[route].clone(),
            conn,
            endpoint: p.job.source.name.clone(),
            sizer: sizers.clone(),
            max_bytes: opts.max_chunk_bytes,
        };
        let (tx, done) = (chunk_tx.clone(), done_tx.clone());
        tasks.spawn(async move { reader.run(after, tx, done).await });
    }
    drop(chunk_tx);
    // Writers share the prepared job through scoped borrows below, so they
    // run in this task's future set rather than as spawned tasks.
    let write_all = async {
        let mut writers = Vec::new();
        for _ in 0..workers {
            writers.push(writer(p, chunk_rx.clone(), done_tx.clone(), throttled.clone()));
        }
        drop(done_tx);
        futures::future::try_join_all(writers).await.map(|_| ())
    };

    let coordinate = async {
        let mut ledgers: HashMap<usize, Ledger> = pending.iter().map(|&r| (r, Ledger::default())).collect();
        let total: u64 = p.routes.iter().map(|r| r.source.estimated_rows).sum();
        let mut meter = Meter::new(Duration::from_secs(10));
        let mut last_report = Instant::now();
        meter.record(last_report, cp.rows_copied());
        loop {
            // Wake up to report even when nothing is written: a throttled
            // copy must say why it is not moving.
            let route = match tokio::time::timeout(p.job.options.report_every, done_rx.recv()).await {
                Ok(None) => break,
                Err(_) => None,
                Ok(Some(Done::Written { route, seq, rows, last_key, took })) => {
                    if let Ok(mut s) = sizers[route].lock() {
                        s.observe(rows, took);
                    }
                    ledgers.get_mut(&route).map(|l| l.written(seq, rows, last_key)).map(|_| route)
                }
                Ok(Some(Done::Finished { route, chunks })) => {
                    ledgers.get_mut(&route).map(|l| l.finished(chunks)).map(|_| route)
                }
            };
            let mut completed = false;
            if let Some(route) = route {
                let ledger = ledgers.get_mut(&route).expect("pending route");
                let table = cp.table_mut(&p.routes[route].source.name.to_string());
                if let Some((rows, key)) = ledger.advance() {
                    table.rows_copied += rows;
                    table.after = Some(key);
                }
                if !table.done && ledger.is_done() {
                    table.done = true;
                    completed = true;
                }
            }
            let now = Instant::now();
            if completed || now.duration_since(last_report) >= p.job.options.report_every {
                last_report = now;
                meter.record(now, cp.rows_copied());
                report(Report::Checkpoint(cp.clone()));
                let reason = throttled.lock().ok().and_then(|t| t.clone());
                report(Report::Progress(copy_progress(cp.rows_copied(), total, meter.rows_per_second(), reason)));
            }
        }
        Ok::<Checkpoint, MovementError>(cp)
    };

    let readers_done = async {
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| MovementError::Internal(format!("copy reader: {e}")))??;
        }
        Ok::<(), MovementError>(())
    };
    let ((), (), cp) = tokio::try_join!(readers_done, write_all, coordinate)?;
    if let Some(t) =
        cp.tables.iter().find(|t| pending.iter().any(|&r| p.routes[r].source.name.to_string() == t.table) && !t.done)
    {
        return Err(MovementError::Internal(format!("copy of {} ended before its last chunk was written", t.table)));
    }
    Ok(cp)
}

/// One table's written chunks. Writers finish out of order; the checkpoint
/// may only move over a prefix of chunks that are all written, or a restart
/// would skip the rows of a chunk still in flight.
#[derive(Debug, Default)]
struct Ledger {
    next: u64,
    waiting: BTreeMap<u64, (u64, Vec<KeyValue>)>,
    chunks: Option<u64>,
}

impl Ledger {
    fn written(&mut self, seq: u64, rows: u64, last_key: Vec<KeyValue>) {
        self.waiting.insert(seq, (rows, last_key));
    }

    /// The reader sent `chunks` chunks in all.
    fn finished(&mut self, chunks: u64) {
        self.chunks = Some(chunks);
    }

    /// Rows newly covered and the key to checkpoint, if the prefix grew.
    fn advance(&mut self) -> Option<(u64, Vec<KeyValue>)> {
        let mut rows = 0;
        let mut key = None;
        while let Some((r, k)) = self.waiting.remove(&self.next) {
            rows += r;
            key = Some(k);
            self.next += 1;
        }
        key.map(|k| (rows, k))
    }

    fn is_done(&self) -> bool {
        self.chunks == Some(self.next)
    }
}

/// Whether a table's rows can be copied inside the source server.
fn in_server(p: &Prepared, route: &Route) -> bool {
    route.targets.len() == 1
        && p.job.targets.get(route.targets[0].endpoint).is_some_and(|t| same_server(&p.job.source, t))
}

fn same_server(a: &super::Endpoint, b: &super::Endpoint) -> bool {
    a.opts.ip_or_hostname() == b.opts.ip_or_hostname()
        && a.opts.tcp_port() == b.opts.tcp_port()
        && a.opts.socket() == b.opts.socket()
}

/// Copies of the in-server path read committed rows without locking them
/// (REPEATABLE READ would share-lock every source row of the chunk).
const READ_COMMITTED: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

struct Reader {
    route: usize,
    /// Rows stay in the server; see the module comment.
    in_server: bool,
    r: Route,
    conn: Conn,
    endpoint: String,
    sizer: Arc<Vec<Mutex<ChunkSizer>>>,
    max_bytes: usize,
}

impl Reader {
    async fn run(
        mut self,
        after: Option<Vec<KeyValue>>,
        tx: mpsc::Sender<Chunk>,
        done: mpsc::UnboundedSender<Done>,
    ) -> Result<()> {
        if self.in_server {
            return self.run_in_server(after, tx, done).await;
        }
        let r = &self.r;
        let select =
            r.source_columns().iter().map(|c| crate::mysql::sql::quote_ident(c)).collect::<Vec<_>>().join(", ");
        let key_cols: Vec<&str> = r.source.key.iter().map(|&k| r.source.columns[k].name.as_str()).collect();
        let key_kinds: Vec<_> = r.source.key.iter().map(|&k| &r.source.columns[k].kind).collect();
        let order = chunk::order_by(&key_cols);
        let mut after: Option<Vec<Value>> = after.map(|k| k.iter().map(KeyValue::to_value).collect());
        let mut seq = 0;
        let mut avg_row_bytes = 0usize;
        loop {
            let mut limit = self.sizer[self.route].lock().map(|s| s.rows()).unwrap_or(1000);
            if let Some(fit) = self.max_bytes.checked_div(avg_row_bytes) {
                limit = limit.min(fit.max(1) as u64);
            }
            let filter = match &after {
                Some(k) => format!(" WHERE {}", chunk::after(&key_cols, &key_kinds, k)),
                None => String::new(),
            };
            let sql = format!("SELECT {select} FROM {}{filter} ORDER BY {order} LIMIT {limit}", r.source.name.sql());
            // Rows are rendered as they arrive: a chunk is held once, as
            // statement text, never also as decoded rows.
            let kinds = r.source_kinds();
            let columns = r.target_columns();
            let mut builders: BTreeMap<usize, writes::ReplaceBuilder> = BTreeMap::new();
            let mut n = 0u64;
            let mut last: Option<Vec<Value>> = None;
            let mut result = self.conn.exec_iter(sql, ()).await.at(&self.endpoint)?;
            result
                .for_each(|row| {
                    let row = row.unwrap();
                    let shard = r.shard(&row);
                    builders
                        .entry(shard)
                        .or_insert_with(|| writes::ReplaceBuilder::new(&r.targets[shard].table, &columns))
                        .push(&row, &kinds);
                    n += 1;
                    last = Some(r.key_of(&row).into_iter().cloned().collect());
                })
                .await
                .at(&self.endpoint)?;
            drop(result);
            let Some(last) = last else { break };
            let bytes: usize = builders.values().map(|b| b.bytes()).sum();
            avg_row_bytes = (bytes / n as usize).max(1);
            let statements = builders
                .into_iter()
                .flat_map(|(shard, b)| {
                    let ep = r.targets[shard].endpoint;
                    b.finish().into_iter().map(move |s| (ep, s))
                })
                .collect();
            let chunk = Chunk {
                route: self.route,
                seq,
                rows: n,
                statements,
                last_key: last.iter().map(KeyValue::from).collect(),
            };
            if tx.send(chunk).await.is_err() {
                return Err(MovementError::Internal("copy writers stopped".into()));
            }
            seq += 1;
            after = Some(last);
            if n < limit {
                break;
            }
        }
        let _ = self.conn.query_drop("COMMIT").await;
        let _ = done.send(Done::Finished { route: self.route, chunks: seq });
        Ok(())
    }

    /// Finds chunk bounds in the snapshot and hands out one
    /// `REPLACE ... SELECT` per chunk. The last chunk is open-ended, so rows
    /// added since the snapshot beyond its last key are copied too.
    async fn run_in_server(
        mut self,
        after: Option<Vec<KeyValue>>,
        tx: mpsc::Sender<Chunk>,
        done: mpsc::UnboundedSender<Done>,
    ) -> Result<()> {
        let r = &self.r;
        let key_cols: Vec<&str> = r.source.key.iter().map(|&k| r.source.columns[k].name.as_str()).collect();
        let key_kinds: Vec<_> = r.source.key.iter().map(|&k| &r.source.columns[k].kind).collect();
        let order = chunk::order_by(&key_cols);
        let desc = key_cols.iter().map(|c| format!("{} DESC", crate::mysql::sql::quote_ident(c))).collect::<Vec<_>>();
        let keys = key_cols.iter().map(|c| crate::mysql::sql::quote_ident(c)).collect::<Vec<_>>().join(", ");
        let target = &r.targets[0];
        let insert = writes::insert_select(&target.table, &r.target_columns(), &r.source_columns(), &r.source.name);
        let table = r.source.name.sql();
        let mut after: Option<Vec<Value>> =
            after.filter(|k| !k.is_empty()).map(|k| k.iter().map(KeyValue::to_value).collect());
        let mut seq = 0;
        loop {
            let limit = self.sizer[self.route].lock().map(|s| s.rows()).unwrap_or(1000).max(1);
            let lower = after.as_ref().map(|k| chunk::after(&key_cols, &key_kinds, k));
            let filter = lower.as_ref().map(|l| format!(" WHERE {l}")).unwrap_or_default();
            let bound = format!("SELECT {keys} FROM {table}{filter} ORDER BY {order} LIMIT 1 OFFSET {}", limit - 1);
            let upper: Option<mysql_async::Row> = self.conn.query_first(bound).await.at(&self.endpoint)?;
            let (range, rows, last, open) = match upper {
                Some(row) => {
                    let u: Vec<Value> = row.unwrap();
                    let upto = chunk::upto(&key_cols, &key_kinds, &u);
                    let range = match &lower {
                        Some(l) => format!(" WHERE {l} AND {upto}"),
                        None => format!(" WHERE {upto}"),
                    };
                    (range, limit, Some(u), false)
                }
                None => {
                    let count = format!("SELECT COUNT(*) FROM {table}{filter}");
                    let n: u64 = self.conn.query_first(count).await.at(&self.endpoint)?.unwrap_or(0);
                    let max = format!("SELECT {keys} FROM {table}{filter} ORDER BY {} LIMIT 1", desc.join(", "));
                    let last: Option<mysql_async::Row> = self.conn.query_first(max).await.at(&self.endpoint)?;
                    let last = last.map(|row| row.unwrap()).or_else(|| after.clone());
                    (filter.clone(), n, last, true)
                }
            };
            let chunk = Chunk {
                route: self.route,
                seq,
                rows,
                statements: vec![
                    (target.endpoint, READ_COMMITTED.into()),
                    (target.endpoint, format!("{insert}{range}")),
                ],
                last_key: last.iter().flatten().map(KeyValue::from).collect(),
            };
            if tx.send(chunk).await.is_err() {
                return Err(MovementError::Internal("copy writers stopped".into()));
            }
            seq += 1;
            if open {
                break;
            }
            after = last;
        }
        let _ = self.conn.query_drop("COMMIT").await;
        let _ = done.send(Done::Finished { route: self.route, chunks: seq });
        Ok(())
    }
}

async fn writer(
    p: &Prepared,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Chunk>>>,
    done: mpsc::UnboundedSender<Done>,
    throttled: Arc<Mutex<Option<String>>>,
) -> Result<()> {
    let mut conns: Vec<Option<Conn>> = p.job.targets.iter().map(|_| None).collect();
    loop {
        let Some(chunk) = rx.lock().await.recv().await else { return Ok(()) };
        let note = |reason: Option<String>| {
            if let Ok(mut t) = throttled.lock() {
                *t = reason;
            }
        };
        p.throttler().wait(&note).await;
        p.throttler().take_rows(chunk.rows).await;
        let start = Instant::now();
        for (ep, sql) in chunk.statements {
            if conns[ep].is_none() {
                conns[ep] = Some(p.job.targets[ep].connect().await?);
            }
            let conn = conns[ep].as_mut().expect("connected above");
            super::writes::fits(conn, &p.job.targets[ep].name, &sql).await?;
            conn.query_drop(sql).await.at(&p.job.targets[ep].name)?;
        }
        let _ = done.send(Done::Written {
            route: chunk.route,
            seq: chunk.seq,
            rows: chunk.rows,
            last_key: chunk.last_key,
            took: start.elapsed(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: i64) -> Vec<KeyValue> {
        vec![KeyValue::Int(i)]
    }

    #[test]
    fn the_checkpoint_moves_only_over_written_prefixes() {
        let mut l = Ledger::default();
        l.written(1, 10, key(20));
        l.written(2, 10, key(30));
        assert_eq!(l.advance(), None, "chunk 0 is still being written");
        l.written(0, 10, key(10));
        assert_eq!(l.advance(), Some((30, key(30))));
        l.finished(4);
        assert!(!l.is_done());
        l.written(3, 5, key(35));
        assert_eq!(l.advance(), Some((5, key(35))));
        assert!(l.is_done());
        assert_eq!(l.advance(), None);
    }

    #[test]
    fn only_the_same_server_copies_in_server() {
        let ep = |url: &str| super::super::Endpoint::from_url("x", url).unwrap();
        let a = ep("mysql://root:pw@127.0.0.1:3306");
        assert!(same_server(&a, &ep("mysql://other:pw2@127.0.0.1:3306")), "the account does not matter");
        assert!(!same_server(&a, &ep("mysql://root:pw@127.0.0.1:3307")));
        assert!(!same_server(&a, &ep("mysql://root:pw@127.0.0.2:3306")));
    }

    #[test]
    fn an_empty_table_is_done_at_once() {
        let mut l = Ledger::default();
        l.finished(0);
        assert_eq!(l.advance(), None);
        assert!(l.is_done());
    }
}
