//! The data-movement engine: one way to move rows while the source keeps
//! taking writes, shared by OnlineDDL, Migration, ShardSplit and backups.
//! `docs/data-movement.md` explains the design and its guarantees.
//!
//! A movement is a [`Job`]: a source endpoint, target endpoints and table
//! mappings. [`Job::prepare`] checks the source's settings and the tables;
//! the [`Prepared`] job then runs the phases, each resumable from the
//! [`Checkpoint`] it reports:
//! - [`Prepared::copy`]: rows from a consistent snapshot, in key order,
//!   chunked and written by several workers;
//! - [`Prepared::apply`]: row events from the binary log, from the snapshot's
//!   position on;
//! - [`Prepared::verify`]: stop the apply at a consistent point and compare
//!   source and targets chunk by chunk.
//!
//! The engine keeps no state anywhere but in the checkpoints it reports.

pub mod apply;
pub mod binlog;
pub mod blockers;
pub mod checkpoint;
pub mod checksum;
pub mod chunk;
pub mod cli;
pub mod copy;
pub mod counter;
pub mod endpoint;
pub mod error;
pub mod fence;
pub mod indexes;
pub mod mapping;
pub mod prereq;
pub mod progress;
pub mod schema;
pub mod session;
pub mod snapshot;
pub mod throttle;
pub mod value;
pub mod writes;

use std::sync::Arc;
use std::time::Duration;

pub use checkpoint::{BinlogPosition, Checkpoint, Phase};
pub use checksum::{ChecksumReport, Mismatch};
pub use endpoint::Endpoint;
pub use error::{MovementError, Result};
pub use mapping::{ColumnMapping, ColumnPair, Route, RowRouter, TableMapping, TargetTable};
pub use schema::TableName;

use crate::api::{Progress, Throttle};
use crate::mysql::Flavor;
use throttle::Throttler;

/// What a running phase tells its caller.
#[derive(Clone, Debug)]
pub enum Report {
    /// Persist this; hand it back to resume.
    Checkpoint(Checkpoint),
    Progress(Progress),
}

/// Receives reports. Called from the engine's tasks, so it must not block.
pub type Reporter = Arc<dyn Fn(Report) + Send + Sync>;

#[derive(Clone, Debug)]
pub struct Options {
    /// Copy writers working in parallel.
    pub workers: usize,
    /// Each copy chunk aims to take this long to write.
    pub chunk_time: Duration,
    /// Upper bound on rows per chunk (memory stays bounded by this and
    /// `max_chunk_bytes`).
    pub max_chunk_rows: u64,
    pub max_chunk_bytes: usize,
    pub throttle: Throttle,
    /// Servers whose replication lag throttles the work (the targets'
    /// replicas, typically).
    pub replicas: Vec<Endpoint>,
    /// The id the binlog reader registers with; unique among the source's
    /// replicas and other readers.
    pub server_id: u32,
    /// The binary log must be kept at least this long.
    pub min_binlog_retention: Duration,
    /// How often checkpoints and progress are reported.
    pub report_every: Duration,
    /// The targets were made for this movement and hold nothing else, so a
    /// copy that starts with no snapshot position recorded may empty them
    /// first (see `copy::run`). Off for `switchyard move`, whose targets
    /// are the user's.
    pub owns_targets: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            workers: 2,
            chunk_time: Duration::from_millis(500),
            max_chunk_rows: 50_000,
            max_chunk_bytes: 4 << 20,
            throttle: Throttle::default(),
            replicas: vec![],
            owns_targets: false,
            server_id: 4_000_000_001,
            min_binlog_retention: Duration::from_secs(24 * 3600),
            report_every: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Job {
    pub source: Endpoint,
    pub targets: Vec<Endpoint>,
    pub tables: Vec<TableMapping>,
    pub options: Options,
}

/// A job whose source, tables and mappings have been checked.
pub struct Prepared {
    pub job: Job,
    pub flavor: Flavor,
    pub routes: Vec<Route>,
    throttler: Throttler,
}

impl Job {
    /// Checks the source's settings, loads every table and resolves the
    /// mappings. Nothing is written.
    pub async fn prepare(self) -> Result<Prepared> {
        if self.tables.is_empty() {
            return Err(MovementError::Internal("no tables to move".into()));
        }
        let mut src = self.source.connect().await?;
        let flavor = self.source.flavor(&mut src).await?;
        prereq::verify(&mut src, &self.source.name, flavor, self.options.min_binlog_retention).await?;
        let mut targets = Vec::with_capacity(self.targets.len());
        for t in &self.targets {
            targets.push(t.connect().await?);
        }
        let mut routes = Vec::with_capacity(self.tables.len());
        for m in &self.tables {
            let source = schema::load(&mut src, &self.source.name, &m.source).await?;
            let first = m.targets.first().ok_or_else(|| MovementError::Table {
                table: m.source.to_string(),
                reason: "no target table".into(),
            })?;
            let ep = first.endpoint;
            let conn = targets.get_mut(ep).ok_or_else(|| MovementError::Table {
                table: m.source.to_string(),
                reason: format!("target endpoint {ep} does not exist"),
            })?;
            let target = schema::load(conn, &self.targets[ep].name, &first.table).await?;
            routes.push(Route::resolve(m, source, target)?);
        }
        let mut replicas = Vec::new();
        for r in &self.options.replicas {
            let mut c = r.connect().await?;
            replicas.push((r.clone(), r.flavor(&mut c).await?));
        }
        let mut busy = vec![self.source.clone()];
        busy.extend(self.targets.iter().cloned());
        let throttler = Throttler::start(self.options.throttle.clone(), busy, replicas);
        Ok(Prepared { job: self, flavor, routes, throttler })
    }
}

impl Prepared {
    /// Copies every table not yet done in `checkpoint` and moves it to the
    /// apply phase.
    pub async fn copy(&self, checkpoint: Checkpoint, report: &Reporter) -> Result<Checkpoint> {
        copy::run(self, checkpoint, report).await
    }

    /// Applies changes from the checkpoint's position until `until`.
    pub async fn apply(&self, checkpoint: Checkpoint, until: apply::Until, report: &Reporter) -> Result<Checkpoint> {
        apply::run(self, checkpoint, until, report).await
    }

    /// Brings the targets to a consistent point with the source and compares
    /// them. The source keeps taking writes; the apply resumes afterwards
    /// from the returned checkpoint.
    pub async fn verify(&self, checkpoint: Checkpoint, report: &Reporter) -> Result<(Checkpoint, ChecksumReport)> {
        checksum::verify(self, checkpoint, report).await
    }

    pub(crate) fn throttler(&self) -> &Throttler {
        &self.throttler
    }
}
