//! The standalone MariaDB servers (hack/local-mariadb.sh) and the load writer
//! the data movement tests build on. No cluster needed.
//!
//!   cargo test -p switchyard-e2e --test local_servers -- --nocapture

use std::time::Duration;

use anyhow::ensure;
use mysql_async::prelude::Queryable;
use switchyard_e2e::harness::load::Load;
use switchyard_e2e::harness::servers::LocalServer;

const PRELOADED: u64 = 1000;

#[tokio::test]
async fn local_servers_keep_row_binlogs_and_take_load() -> anyhow::Result<()> {
    let a = LocalServer::start("sy-test-a", 33061, &[])?;
    let b = LocalServer::start("sy-test-b", 33062, &[])?;

    for server in [&a, &b] {
        let mut conn = server.conn().await?;
        let settings: Option<(u8, String, String, u32)> =
            conn.query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id").await?;
        ensure!(
            settings == Some((1, "ROW".into(), "FULL".into(), u32::from(server.port))),
            "{}: log_bin, binlog_format, binlog_row_image, server_id = {settings:?}",
            server.name
        );
        conn.disconnect().await?;
    }

    let mut conn = a.conn().await?;
    // `extra` is a column the writer does not know about: it must be left alone.
    conn.query_drop("DROP DATABASE IF EXISTS sy_load").await?;
    conn.query_drop("CREATE DATABASE sy_load").await?;
    conn.query_drop(
        "CREATE TABLE sy_load.t (id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(120), pad VARCHAR(60), \
         extra INT NOT NULL DEFAULT 7) DEFAULT CHARSET = utf8mb4",
    )
    .await?;
    conn.query_drop(format!(
        "INSERT INTO sy_load.t (id, k, c, pad) SELECT seq, seq % 1000, CONCAT('row ', seq), 'x' FROM sy_load.seq_1_to_{PRELOADED}"
    ))
    .await?;

    let load = Load::start(&a.url(), "sy_load.t", 2, PRELOADED + 1, Duration::ZERO).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let errors = load.errors();
    let ops = load.stop().await?;
    println!("load: {ops} operations committed, {errors} errors");
    ensure!(ops > 0, "no operation committed");

    let (rows, max_id, untouched, with_emoji): (u64, u64, u64, u64) = conn
        .query_first(
            "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(extra = 7), 0), \
             COALESCE(SUM(HEX(c) REGEXP '^(..)*F[0-4]'), 0) FROM sy_load.t",
        )
        .await?
        .expect("an aggregate returns a row");
    println!("sy_load.t: {rows} rows, max id {max_id}, {with_emoji} with 4-byte characters");
    ensure!(rows > 0, "the load left sy_load.t empty");
    ensure!(untouched == rows, "the writer touched the extra column ({untouched} of {rows} rows kept it)");
    ensure!(with_emoji > 0, "no row holds a 4-byte character: utf8mb4 is not exercised");
    conn.disconnect().await?;
    Ok(())
}
