//! `switchyard move`: the engine driven from a shell, with the checkpoint in
//! a file instead of a resource's status. It is how the integration tests
//! and benchmarks run the engine as a separate process they can kill.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::apply::Until;
use super::mapping::{ColumnMapping, RowRouter, TableMapping, TargetTable};
use super::{Checkpoint, Endpoint, Job, MovementError, Options, Phase, Report, Reporter, TableName};
use crate::api::Throttle;

#[derive(Args, Debug)]
pub struct MoveArgs {
    /// Source, as mysql://user:password@host:port.
    #[arg(long)]
    pub source: String,
    /// Target(s); `--table` refers to them by position (0 is the first).
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// `schema.table=[N:]schema.table[,[N:]schema.table...]`: a source table
    /// and its target table(s) on target N (default 0).
    #[arg(long = "table", required = true)]
    pub tables: Vec<String>,
    /// How tables with several targets pick one: `modulo:COLUMN`,
    /// `hash:COLUMN` or `ranges:COLUMN:BOUND,BOUND...`.
    #[arg(long)]
    pub route_by: Option<String>,
    /// The checkpoint file: read to resume, rewritten as work progresses.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// What to do after the copy.
    #[arg(long, value_enum, default_value = "verify")]
    pub then: Then,
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    #[arg(long)]
    pub max_rows_per_second: Option<i64>,
    #[arg(long)]
    pub max_threads_running: Option<i32>,
    #[arg(long)]
    pub max_replica_lag_seconds: Option<i32>,
    /// Replicas whose lag throttles the work.
    #[arg(long = "replica")]
    pub replicas: Vec<String>,
    /// The server id the binlog reader registers with; it must differ from
    /// every replica's and every other reader's. Unset: 4000000000 plus this
    /// process's id.
    #[arg(long)]
    pub server_id: Option<u32>,
    /// Minimum binary log retention the source must have, in hours.
    #[arg(long, default_value_t = 24)]
    pub min_binlog_retention_hours: u64,
    /// Print progress to stderr every this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub report_ms: u64,
    /// Stop after copying (for tests that interrupt between phases).
    #[arg(long)]
    pub copy_only: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Then {
    /// Apply changes until caught up with the source, then exit.
    CaughtUp,
    /// Catch up, then compare source and targets; exit 3 on a mismatch.
    Verify,
    /// Apply changes until interrupted.
    Follow,
}

pub fn parse_table(spec: &str, route_by: Option<&RowRouter>) -> Result<TableMapping, String> {
    let (src, dsts) = spec.split_once('=').ok_or_else(|| format!("--table {spec}: expected SOURCE=TARGET"))?;
    let source = TableName::parse(src).ok_or_else(|| format!("--table {spec}: {src} is not schema.table"))?;
    let mut targets = Vec::new();
    for d in dsts.split(',') {
        let (endpoint, name) = match d.split_once(':') {
            Some((n, t)) => (n.parse::<usize>().map_err(|_| format!("--table {spec}: bad target index {n}"))?, t),
            None => (0, d),
        };
        let table = TableName::parse(name).ok_or_else(|| format!("--table {spec}: {name} is not schema.table"))?;
        targets.push(TargetTable { endpoint, table });
    }
    let router = if targets.len() > 1 { route_by.cloned() } else { None };
    Ok(TableMapping { source, targets, columns: ColumnMapping::SameNames, router })
}

pub fn parse_router(spec: &str) -> Result<RowRouter, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        ["modulo", column] => Ok(RowRouter::Modulo { column: column.to_string() }),
        ["hash", column] => Ok(RowRouter::Hash { column: column.to_string() }),
        ["ranges", column, bounds] => {
            let upper_bounds = bounds
                .split(',')
                .map(|b| b.parse::<i64>().map_err(|_| format!("--route-by: bad bound {b}")))
                .collect::<Result<_, _>>()?;
            Ok(RowRouter::Ranges { column: column.to_string(), upper_bounds })
        }
        _ => Err(format!("--route-by {spec}: expected modulo:COLUMN, hash:COLUMN or ranges:COLUMN:B1,B2")),
    }
}

fn save(path: &Path, cp: &Checkpoint) {
    let tmp = path.with_extension("tmp");
    let ok = serde_json::to_vec_pretty(cp)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = ok {
        tracing::error!("saving checkpoint {}: {e}", path.display());
    }
}

/// Runs the command; the exit code is 0 done, 2 failed, 3 verify mismatch.
pub async fn run(args: MoveArgs) -> i32 {
    match run_inner(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{{\"error\":{},\"reason\":\"{}\"}}", serde_json::json!(e.to_string()), e.metric_label());
            2
        }
    }
}

async fn run_inner(args: MoveArgs) -> Result<i32, MovementError> {
    let bad = |m: String| MovementError::Internal(m);
    let router = args.route_by.as_deref().map(parse_router).transpose().map_err(bad)?;
    let tables =
        args.tables.iter().map(|t| parse_table(t, router.as_ref())).collect::<Result<Vec<_>, _>>().map_err(bad)?;
    let targets = args
        .targets
        .iter()
        .enumerate()
        .map(|(i, u)| Endpoint::from_url(&format!("target{i}"), u))
        .collect::<Result<Vec<_>, _>>()?;
    let replicas = args
        .replicas
        .iter()
        .enumerate()
        .map(|(i, u)| Endpoint::from_url(&format!("replica{i}"), u))
        .collect::<Result<Vec<_>, _>>()?;
    let job = Job {
        source: Endpoint::from_url("source", &args.source)?,
        targets,
        tables,
        options: Options {
            workers: args.workers,
            throttle: Throttle {
                max_replica_lag_seconds: args.max_replica_lag_seconds,
                max_threads_running: args.max_threads_running,
                max_rows_per_second: args.max_rows_per_second,
            },
            replicas,
            server_id: args.server_id.unwrap_or(4_000_000_000 + std::process::id() % 100_000_000),
            min_binlog_retention: Duration::from_secs(args.min_binlog_retention_hours * 3600),
            report_every: Duration::from_millis(args.report_ms),
            ..Options::default()
        },
    };
    let prepared = job.prepare().await?;
    let checkpoint: Checkpoint = match std::fs::read(&args.checkpoint) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| MovementError::Checkpoint(format!("{}: {e}", args.checkpoint.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Checkpoint::default(),
        Err(e) => return Err(MovementError::Checkpoint(format!("{}: {e}", args.checkpoint.display()))),
    };
    let path = args.checkpoint.clone();
    let reporter: Reporter = Arc::new(move |r| match r {
        Report::Checkpoint(cp) => save(&path, &cp),
        Report::Progress(p) => eprintln!("{}", serde_json::json!({ "progress": p })),
    });
    let started = tokio::time::Instant::now();
    let resumed = checkpoint != Checkpoint::default();
    let cp = prepared.copy(checkpoint, &reporter).await?;
    let copied_in = started.elapsed();
    let summary = |phase: &str, cp: &Checkpoint| {
        serde_json::json!({
            "phase": phase,
            "resumed": resumed,
            "rowsCopied": cp.rows_copied(),
            "copySeconds": copied_in.as_secs_f64(),
            "applied": cp.applied.as_ref().map(|p| p.to_string()),
        })
    };
    if args.copy_only {
        println!("{}", summary("copied", &cp));
        return Ok(0);
    }
    debug_assert_eq!(cp.phase, Phase::Apply);
    match args.then {
        Then::CaughtUp => {
            let cp = prepared.apply(cp, Until::CaughtUp, &reporter).await?;
            println!("{}", summary("caught-up", &cp));
            Ok(0)
        }
        Then::Follow => {
            let apply = prepared.apply(cp, Until::Forever, &reporter);
            tokio::select! {
                r = apply => { r?; Ok(0) }
                _ = tokio::signal::ctrl_c() => Ok(0),
            }
        }
        Then::Verify => {
            let cp = prepared.apply(cp, Until::CaughtUp, &reporter).await?;
            let t = tokio::time::Instant::now();
            let (cp, report) = prepared.verify(cp, &reporter).await?;
            let mut out = summary("verified", &cp);
            out["checksumSeconds"] = serde_json::json!(t.elapsed().as_secs_f64());
            out["checksum"] = serde_json::to_value(&report).unwrap_or_default();
            out["equal"] = serde_json::json!(report.is_equal());
            println!("{out}");
            Ok(if report.is_equal() { 0 } else { 3 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_specs() {
        let m = parse_table("shop.orders=shop.orders_new", None).unwrap();
        assert_eq!(m.targets, vec![TargetTable { endpoint: 0, table: TableName::new("shop", "orders_new") }]);
        assert_eq!(parse_router("hash:tenant").unwrap(), RowRouter::Hash { column: "tenant".into() });
        let r = parse_router("modulo:tenant").unwrap();
        let m = parse_table("a.t=0:a.t_0,1:a.t_1", Some(&r)).unwrap();
        assert_eq!(m.targets.len(), 2);
        assert_eq!(m.targets[1].endpoint, 1);
        assert_eq!(m.router, Some(r));
        assert!(parse_table("a.t", None).is_err());
        assert!(parse_table("a.t=x:a.t", None).is_err());
        assert_eq!(
            parse_router("ranges:id:100,200").unwrap(),
            RowRouter::Ranges { column: "id".into(), upper_bounds: vec![100, 200] }
        );
        assert!(parse_router("crc:id").is_err());
    }
}
