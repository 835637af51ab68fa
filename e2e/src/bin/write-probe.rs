//! A writer that measures what an application would see: one single-row
//! INSERT every `--interval-ms` into a sysbench-shaped table, each timed,
//! until SIGTERM/SIGINT. Prints `{"writes":N,"errors":E,"maxMillis":M,"p99Millis":P}`.
//! Used by bench/onlineddl.sh to measure the cut-over's write stall.
//!
//!   write-probe mysql://root:pw@127.0.0.1:3306 sbtest.sbtest1 [interval-ms]

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: write-probe URL TABLE [interval-ms]");
    let opts: Opts = OptsBuilder::from_opts(Opts::from_url(&args[1])?).prefer_socket(false).into();
    let table = &args[2];
    let interval = Duration::from_millis(args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5));
    let mut conn = Conn::new(opts).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut latencies: Vec<f64> = Vec::new();
    let mut errors = 0u64;
    loop {
        let started = Instant::now();
        let write = conn.query_drop(format!("INSERT INTO {table} (k, c, pad) VALUES (1, 'probe', 'probe')"));
        tokio::select! {
            r = write => {
                if r.is_err() { errors += 1; }
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let max = latencies.last().copied().unwrap_or(0.0);
    let p99 = latencies.get((latencies.len() * 99) / 100).copied().unwrap_or(max);
    println!(
        "{}",
        serde_json::json!({"writes": latencies.len(), "errors": errors, "maxMillis": max, "p99Millis": p99})
    );
    Ok(())
}
