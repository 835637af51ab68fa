//! The data-movement engine against two real MariaDB servers
//! (hack/local-mariadb.sh), driven as a user would: `switchyard move` as a
//! separate process that is killed and restarted, with a writer changing the
//! source the whole time. Every test ends with an independent row-by-row
//! comparison, not only the engine's own checksum.
//!
//!   cargo test -p switchyard-e2e --test movement -- --test-threads=1

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use switchyard_e2e::harness::load::Load;
use switchyard_e2e::harness::servers::LocalServer;
use switchyard_e2e::harness::wait::holds_for;
use switchyard_e2e::harness::wait_until_async;

fn source() -> anyhow::Result<LocalServer> {
    LocalServer::start("sy-test-a", 33061, &[])
}

fn target() -> anyhow::Result<LocalServer> {
    LocalServer::start("sy-test-b", 33062, &[])
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn logs() -> anyhow::Result<PathBuf> {
    let dir = root().join("target/e2e-logs");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The `switchyard move` arguments every run shares.
fn move_args(src: &LocalServer, dst: &LocalServer, tables: &[&str], checkpoint: &Path, server_id: u32) -> Vec<String> {
    let mut args = vec![
        "move".to_string(),
        "--source".into(),
        src.url(),
        "--target".into(),
        dst.url(),
        "--checkpoint".into(),
        checkpoint.display().to_string(),
        "--server-id".into(),
        server_id.to_string(),
        "--min-binlog-retention-hours".into(),
        "0".into(),
        "--report-ms".into(),
        "200".into(),
    ];
    for t in tables {
        args.push("--table".into());
        args.push(t.to_string());
    }
    args
}

/// `args` with `--then what`.
fn then(args: &[String], what: &str) -> Vec<String> {
    let mut a = args.to_vec();
    a.extend(["--then".to_string(), what.to_string()]);
    a
}

/// A running `switchyard move`.
struct Engine {
    child: tokio::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Engine {
    fn start(name: &str, args: &[String]) -> anyhow::Result<Engine> {
        let bin = std::env::var("SWITCHYARD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root().join("target/debug/switchyard"));
        ensure!(bin.exists(), "no switchyard binary at {}: run `cargo build -p switchyard`", bin.display());
        let (stdout, stderr) = (logs()?.join(format!("{name}.out")), logs()?.join(format!("{name}.err")));
        let child = tokio::process::Command::new(bin)
            .args(args)
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Engine { child, stdout, stderr })
    }

    /// Waits for the process to exit; (exit code, stdout, stderr tail).
    async fn finish(mut self, within: Duration) -> anyhow::Result<(i32, String, String)> {
        let status =
            tokio::time::timeout(within, self.child.wait()).await.context("switchyard move did not finish")??;
        let out = std::fs::read_to_string(&self.stdout)?;
        let err = std::fs::read_to_string(&self.stderr)?;
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        Ok((status.code().unwrap_or(-1), out, tail.into_iter().rev().collect::<Vec<_>>().join("\n")))
    }

    async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

async fn run(name: &str, args: &[String]) -> anyhow::Result<(i32, String, String)> {
    Engine::start(name, args)?.finish(Duration::from_secs(300)).await
}

/// Polls `check` until it holds.
async fn until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    wait_until_async(what, timeout, Duration::from_millis(100), || {
        let fut = check();
        async move { Ok(fut.await?.then_some(())) }
    })
    .await
}

fn checkpoint(path: &Path) -> serde_json::Value {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn checkpoint_file(name: &str) -> anyhow::Result<PathBuf> {
    let path = logs()?.join(format!("{name}.checkpoint.json"));
    let _ = std::fs::remove_file(&path);
    Ok(path)
}

/// `db` recreated on both servers, with the load's table shape on the
/// source (`rows` rows) and an empty copy of it on the target.
async fn fresh(src: &mut Conn, dst: &mut Conn, db: &str, rows: u64) -> anyhow::Result<()> {
    let ddl = format!(
        "CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(120), pad VARCHAR(60), \
         note VARCHAR(20) NOT NULL DEFAULT 'kept', KEY k (k)) DEFAULT CHARSET = utf8mb4"
    );
    for conn in [&mut *src, &mut *dst] {
        conn.query_drop(format!("DROP DATABASE IF EXISTS {db}")).await?;
        conn.query_drop(format!("CREATE DATABASE {db}")).await?;
        conn.query_drop(&ddl).await?;
    }
    if rows > 0 {
        src.query_drop(format!(
            "INSERT INTO {db}.t (id, k, c, pad) SELECT seq, seq % 1000, CONCAT('row ', seq, ' 🚂'), RPAD('p', 50, 'x') \
             FROM {db}.seq_1_to_{rows}"
        ))
        .await?;
    }
    Ok(())
}

/// All rows in key order, as the binary protocol returns them.
async fn rows(conn: &mut Conn, table: &str, order: &str) -> anyhow::Result<Vec<Vec<Value>>> {
    let rows: Vec<Row> = conn.exec(format!("SELECT * FROM {table} ORDER BY {order}"), ()).await?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// Row-by-row comparison; the error names the first differing row.
fn same_rows(what: &str, src: &[Vec<Value>], dst: &[Vec<Value>]) -> anyhow::Result<()> {
    for (i, (s, d)) in src.iter().zip(dst).enumerate() {
        if s != d {
            bail!("{what}: row {i} differs:\n source {s:?}\n target {d:?}");
        }
    }
    ensure!(src.len() == dst.len(), "{what}: source has {} rows, target {}", src.len(), dst.len());
    Ok(())
}

async fn compare(src: &mut Conn, dst: &mut Conn, src_table: &str, dst_table: &str) -> anyhow::Result<usize> {
    let s = rows(src, src_table, "1").await?;
    let d = rows(dst, dst_table, "1").await?;
    same_rows(&format!("{src_table} vs {dst_table}"), &s, &d)?;
    Ok(s.len())
}

fn field<'a>(out: &'a str, key: &str) -> Option<serde_json::Value> {
    let line: &'a str = out.lines().rev().find(|l| l.starts_with('{'))?;
    serde_json::from_str::<serde_json::Value>(line).ok()?.get(key).cloned()
}

#[tokio::test]
async fn copy_apply_and_verify_under_writes() -> anyhow::Result<()> {
    let (a, b) = (source()?, target()?);
    let (mut src, mut dst) = (a.conn().await?, b.conn().await?);
    fresh(&mut src, &mut dst, "mv_basic", 30_000).await?;
    let load = Load::start(&a.url(), "mv_basic.t", 2, 30_001, Duration::from_millis(1)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cp = checkpoint_file("basic")?;
    let args = move_args(&a, &b, &["mv_basic.t=mv_basic.t"], &cp, 4_100_000_001);
    let caught_up = then(&args, "caught-up");
    let (code, out, err) = run("basic-copy", &caught_up).await?;
    ensure!(code == 0, "copy and catch-up failed ({code}): {out}\n{err}");
    ensure!(field(&out, "rowsCopied").and_then(|v| v.as_u64()).unwrap_or(0) >= 30_000, "{out}");

    // Keep applying while the writer goes on, then stop both and verify.
    let follow = then(&args, "follow");
    let follower = Engine::start("basic-follow", &follow)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ops = load.stop().await?;
    follower.kill().await?;

    let verify = then(&args, "verify");
    let (code, out, err) = run("basic-verify", &verify).await?;
    ensure!(code == 0, "verify failed ({code}): {out}\n{err}");
    ensure!(field(&out, "equal") == Some(serde_json::json!(true)), "{out}");
    let n = compare(&mut src, &mut dst, "mv_basic.t", "mv_basic.t").await?;
    println!("{ops} writer operations; {n} rows equal row by row");
    Ok(())
}

#[tokio::test]
async fn killed_mid_copy_and_mid_apply_resumes_without_loss() -> anyhow::Result<()> {
    let (a, b) = (source()?, target()?);
    let (mut src, mut dst) = (a.conn().await?, b.conn().await?);
    fresh(&mut src, &mut dst, "mv_resume", 200_000).await?;
    let load = Load::start(&a.url(), "mv_resume.t", 2, 200_001, Duration::from_millis(1)).await?;

    let cp = checkpoint_file("resume")?;
    let args = move_args(&a, &b, &["mv_resume.t=mv_resume.t"], &cp, 4_100_000_002);
    // Slowed down so the kill lands mid-copy.
    let mut slow = args.clone();
    slow.extend(["--then".into(), "caught-up".into(), "--max-rows-per-second".into(), "20000".into()]);
    let engine = Engine::start("resume-copy-1", &slow)?;
    until("the copy to checkpoint some rows", Duration::from_secs(60), || async {
        Ok(checkpoint(&cp)["tables"][0]["rowsCopied"].as_u64().unwrap_or(0) >= 40_000)
    })
    .await?;
    engine.kill().await?;
    let at_kill = checkpoint(&cp);
    ensure!(at_kill["phase"] == "Copy" && at_kill["tables"][0]["done"] != true, "killed too late: {at_kill}");
    ensure!(at_kill["tables"][0]["after"].is_array(), "no key checkpoint: {at_kill}");
    println!("killed mid-copy at {}", at_kill["tables"][0]);

    let caught_up = then(&args, "caught-up");
    let (code, out, err) = run("resume-copy-2", &caught_up).await?;
    ensure!(code == 0, "resumed copy failed ({code}): {out}\n{err}");
    ensure!(field(&out, "resumed") == Some(serde_json::json!(true)), "{out}");

    // Now kill it while it applies changes.
    let follow = then(&args, "follow");
    let before = checkpoint(&cp)["applied"].clone();
    let mut follower = Engine::start("resume-follow", &follow)?;
    until("the apply to checkpoint a later position", Duration::from_secs(60), || {
        let before = before.clone();
        let cp = cp.clone();
        async move { Ok(checkpoint(&cp)["applied"] != before) }
    })
    .await?;
    ensure!(follower.is_running(), "the follower exited early");
    follower.kill().await?;
    println!("killed mid-apply at {}", checkpoint(&cp)["applied"]);
    // Changes made while nothing applies them wait in the binary log.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ops = load.stop().await?;

    let verify = then(&args, "verify");
    let (code, out, err) = run("resume-verify", &verify).await?;
    ensure!(code == 0, "verify after resume failed ({code}): {out}\n{err}");
    let n = compare(&mut src, &mut dst, "mv_resume.t", "mv_resume.t").await?;
    println!("{ops} writer operations; {n} rows equal row by row after two kills");
    Ok(())
}

#[tokio::test]
async fn every_column_type_survives_copy_and_apply() -> anyhow::Result<()> {
    let (a, b) = (source()?, target()?);
    let (mut src, mut dst) = (a.conn().await?, b.conn().await?);
    let ddl = "CREATE TABLE mv_types.t (
        id INT UNSIGNED NOT NULL PRIMARY KEY,
        ti TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT UNSIGNED, i INT, bi BIGINT UNSIGNED, sbi BIGINT,
        de DECIMAL(30,10), fl FLOAT, do DOUBLE, bt BIT(10), yr YEAR,
        da DATE, tm TIME(3), dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
        en ENUM('small','medium','large'), st SET('red','green','blue'),
        ch CHAR(10), vc VARCHAR(100), l1 VARCHAR(20) CHARACTER SET latin1, tx TEXT, lt LONGTEXT,
        bl BLOB, bn BINARY(4), vb VARBINARY(20), js JSON
    ) DEFAULT CHARSET = utf8mb4";
    for conn in [&mut src, &mut dst] {
        conn.query_drop("DROP DATABASE IF EXISTS mv_types").await?;
        conn.query_drop("CREATE DATABASE mv_types").await?;
        conn.query_drop(ddl).await?;
    }
    src.query_drop("SET NAMES utf8mb4").await?;
    let rows = [
        "(1, 255, -32768, 16777215, -2147483648, 18446744073709551615, -9223372036854775808,
          -12345678901234567890.0123456789, 3.4e38, -1.7976931348623157e308, b'1010101010', 2155,
          '1000-01-01', '-838:59:59.000', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999',
          'large', 'red,blue', 'abc', 'emoji 😀🚂 ok', 'caf\u{e9}', REPEAT('t', 5000), REPEAT('🦀', 20000),
          X'00FF00FF', X'01020304', X'', '{\"a\": [1, 2.5, \"x\"], \"b\": null}')",
        "(2, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'0', 0, '2024-02-29', '00:00:00.001', '1970-01-01 00:00:01',
          '1970-01-01 00:00:01.000001', 'small', '', '', '', '', '', '', '', X'00000000', X'00', '[]')",
        "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
          NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        "(4, 1, -1, 1, -1, 9223372036854775808, 1, 0.0000000001, 1.17549435e-38, 2.2250738585072014e-308,
          b'1111111111', 1901, '2000-01-01', '12:34:56.789', '2000-01-01 00:00:00.5', '2020-02-02 02:02:02',
          'medium', 'red,green,blue', 'a\\\\b''c', 'quote '' backslash \\\\ nul \\0 end', 'ÿ', 'x', 'y',
          X'5C27', X'FFFFFFFF', X'FF', '\"plain string\"')",
    ];
    src.query_drop(format!("INSERT INTO mv_types.t VALUES {}", rows.join(","))).await?;

    let cp = checkpoint_file("types")?;
    let args = move_args(&a, &b, &["mv_types.t=mv_types.t"], &cp, 4_100_000_003);
    let verify = then(&args, "verify");
    let (code, out, err) = run("types-copy", &verify).await?;
    ensure!(code == 0, "copy of every type failed ({code}): {out}\n{err}");
    compare(&mut src, &mut dst, "mv_types.t", "mv_types.t").await.context("after the copy")?;

    // The same values again, this time through row events: rows 1-4 are
    // re-inserted under new ids, updated in place, and some deleted.
    src.query_drop(
        "INSERT INTO mv_types.t SELECT id + 100, ti, si, mi, i, bi, sbi, de, fl, do, bt, yr, da, tm, dt, ts, en, st, \
         ch, vc, l1, tx, lt, bl, bn, vb, js FROM mv_types.t",
    )
    .await?;
    src.query_drop(
        "UPDATE mv_types.t SET ti = 254, bi = bi DIV 2, de = -de, fl = fl / 2, dt = '2001-02-03 04:05:06.070809', \
         ts = '2030-01-01 00:00:00.123456', en = 'small', st = 'green', vc = CONCAT(vc, ' 🎉'), bl = X'DEADBEEF', \
         js = JSON_OBJECT('k', id), yr = 1999, tm = '-01:02:03.004', bt = b'1' WHERE id IN (1, 2, 101, 104)",
    )
    .await?;
    src.query_drop("DELETE FROM mv_types.t WHERE id IN (3, 102)").await?;
    src.query_drop("UPDATE mv_types.t SET id = 1000 WHERE id = 4").await?;
    let (code, out, err) = run("types-apply", &verify).await?;
    ensure!(code == 0, "apply of every type failed ({code}): {out}\n{err}");
    let n = compare(&mut src, &mut dst, "mv_types.t", "mv_types.t").await.context("after the apply")?;
    ensure!(n == 6, "expected 6 rows, found {n}");
    Ok(())
}

#[tokio::test]
async fn a_table_without_a_key_is_refused() -> anyhow::Result<()> {
    let (a, b) = (source()?, target()?);
    let (mut src, mut dst) = (a.conn().await?, b.conn().await?);
    for conn in [&mut src, &mut dst] {
        conn.query_drop("DROP DATABASE IF EXISTS mv_nokey").await?;
        conn.query_drop("CREATE DATABASE mv_nokey").await?;
        conn.query_drop("CREATE TABLE mv_nokey.t (a INT, b INT, UNIQUE KEY (a))").await?;
    }
    src.query_drop("INSERT INTO mv_nokey.t VALUES (1, 1), (NULL, 2), (NULL, 3)").await?;
    let cp = checkpoint_file("nokey")?;
    let (code, out, err) = run("nokey", &move_args(&a, &b, &["mv_nokey.t=mv_nokey.t"], &cp, 4_100_000_004)).await?;
    ensure!(code == 2, "expected a refusal (exit 2), got {code}: {out}\n{err}");
    ensure!(err.contains("no primary key and no unique key on NOT NULL columns"), "unclear error: {err}");
    let copied: Option<u64> = dst.query_first("SELECT COUNT(*) FROM mv_nokey.t").await?;
    ensure!(copied == Some(0), "a refused table was written to");
    ensure!(!cp.exists(), "a refused job wrote a checkpoint");
    Ok(())
}

#[tokio::test]
async fn compressed_binlog_events_stop_the_apply() -> anyhow::Result<()> {
    // Its own source: this test turns compression on globally.
    let c = LocalServer::start("sy-test-c", 33063, &[])?;
    let b = target()?;
    let (mut src, mut dst) = (c.conn().await?, b.conn().await?);
    src.query_drop("SET GLOBAL log_bin_compress = OFF").await?;
    fresh(&mut src, &mut dst, "mv_compress", 1000).await?;
    let cp = checkpoint_file("compress")?;
    let args = move_args(&c, &b, &["mv_compress.t=mv_compress.t"], &cp, 4_100_000_005);
    let follow = then(&args, "follow");
    let follower = Engine::start("compress-follow", &follow)?;
    until("the copy to finish", Duration::from_secs(60), || {
        let cp = cp.clone();
        async move { Ok(checkpoint(&cp)["phase"] == "Apply") }
    })
    .await?;
    let applied_before = checkpoint(&cp)["applied"].clone();

    src.query_drop("SET GLOBAL log_bin_compress = ON").await?;
    // A fresh session picks up the global; rows above the minimum length
    // are logged as compressed row events.
    let mut writer = c.conn().await?;
    writer.query_drop("SET NAMES utf8mb4").await?;
    writer
        .query_drop("INSERT INTO mv_compress.t (id, k, c, pad) VALUES (5001, 1, REPEAT('🚂', 100), REPEAT('y', 60))")
        .await?;
    let stopped = follower.finish(Duration::from_secs(10)).await;
    src.query_drop("SET GLOBAL log_bin_compress = OFF").await?;
    let (code, out, err) = stopped?;
    ensure!(code == 2, "the apply must stop on a compressed event; exit {code}: {out}\n{err}");
    ensure!(err.contains("compressed row event") && err.contains("log_bin_compress"), "unclear error: {err}");
    let row: Option<u64> = dst.query_first("SELECT COUNT(*) FROM mv_compress.t WHERE id = 5001").await?;
    ensure!(row == Some(0), "the compressed change must not be half-applied");
    let applied_after = checkpoint(&cp)["applied"].clone();
    let pos =
        |v: &serde_json::Value| (v["file"].as_str().unwrap_or("").to_string(), v["position"].as_u64().unwrap_or(0));
    ensure!(pos(&applied_after) >= pos(&applied_before), "the checkpoint went backwards");

    // Up front, the same setting is named before any work starts.
    src.query_drop("SET GLOBAL log_bin_compress = ON").await?;
    let cp2 = checkpoint_file("compress-prereq")?;
    let refused =
        run("compress-prereq", &move_args(&c, &b, &["mv_compress.t=mv_compress.t"], &cp2, 4_100_000_006)).await;
    src.query_drop("SET GLOBAL log_bin_compress = OFF").await?;
    let (code, _, err) = refused?;
    ensure!(code == 2 && err.contains("log_bin_compress is ON; it must be OFF"), "exit {code}: {err}");
    Ok(())
}

#[tokio::test]
async fn ddl_on_a_moved_table_stops_the_apply() -> anyhow::Result<()> {
    let (a, b) = (source()?, target()?);
    let (mut src, mut dst) = (a.conn().await?, b.conn().await?);
    fresh(&mut src, &mut dst, "mv_ddl", 1000).await?;
    let cp = checkpoint_file("ddl")?;
    let follow = then(&move_args(&a, &b, &["mv_ddl.t=mv_ddl.t"], &cp, 4_100_000_007), "follow");
    let follower = Engine::start("ddl-follow", &follow)?;
    until("the copy to finish", Duration::from_secs(60), || {
        let cp = cp.clone();
        async move { Ok(checkpoint(&cp)["phase"] == "Apply") }
    })
    .await?;
    src.query_drop("ALTER TABLE mv_ddl.t ADD COLUMN added INT").await?;
    let (code, out, err) = follower.finish(Duration::from_secs(20)).await?;
    ensure!(code == 2, "DDL must stop the apply; exit {code}: {out}\n{err}");
    ensure!(err.contains("DDL on a table being moved") && err.contains("mv_ddl.t"), "unclear error: {err}");
    Ok(())
}

#[tokio::test]
async fn split_into_shards_under_writes_and_verify() -> anyhow::Result<()> {
    let (a, b) = (source()?, target()?);
    let (mut src, mut dst) = (a.conn().await?, b.conn().await?);
    fresh(&mut src, &mut dst, "mv_shard", 20_000).await?;
    dst.query_drop("CREATE TABLE mv_shard.t_1 LIKE mv_shard.t").await?;
    let load = Load::start(&a.url(), "mv_shard.t", 2, 20_001, Duration::from_millis(1)).await?;
    let cp = checkpoint_file("shard")?;
    let mut args = move_args(&a, &b, &["mv_shard.t=0:mv_shard.t,0:mv_shard.t_1"], &cp, 4_100_000_008);
    args.extend(["--route-by".into(), "modulo:id".into()]);
    let caught_up = then(&args, "caught-up");
    let (code, out, err) = run("shard-copy", &caught_up).await?;
    ensure!(code == 0, "split failed ({code}): {out}\n{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ops = load.stop().await?;
    let verify = then(&args, "verify");
    let (code, out, err) = run("shard-verify", &verify).await?;
    ensure!(code == 0, "verify through the router failed ({code}): {out}\n{err}");

    let s = rows(&mut src, "mv_shard.t", "id").await?;
    let even = rows(&mut dst, "mv_shard.t", "id").await?;
    let odd = rows(&mut dst, "mv_shard.t_1", "id").await?;
    let id = |r: &Vec<Value>| match r[0] {
        Value::Int(i) => i,
        _ => -1,
    };
    ensure!(even.iter().all(|r| id(r) % 2 == 0) && odd.iter().all(|r| id(r) % 2 == 1), "a row is in the wrong shard");
    let mut both = [even, odd].concat();
    both.sort_by_key(id);
    same_rows("mv_shard.t vs its two shards", &s, &both)?;
    println!("{ops} writer operations; {} rows split into 2 shards, equal row by row", s.len());
    Ok(())
}

#[tokio::test]
async fn verify_names_the_rows_that_differ() -> anyhow::Result<()> {
    let (a, b) = (source()?, target()?);
    let (mut src, mut dst) = (a.conn().await?, b.conn().await?);
    fresh(&mut src, &mut dst, "mv_diff", 5000).await?;
    let cp = checkpoint_file("diff")?;
    let verify = then(&move_args(&a, &b, &["mv_diff.t=mv_diff.t"], &cp, 4_100_000_009), "verify");
    let (code, out, err) = run("diff-copy", &verify).await?;
    ensure!(code == 0, "copy failed ({code}): {out}\n{err}");

    // Damage the target behind the engine's back: one row changed, one
    // missing, one extra, and one changed only in a way a collation would
    // hide (case).
    dst.query_drop("UPDATE mv_diff.t SET k = k + 1 WHERE id = 1234").await?;
    dst.query_drop("DELETE FROM mv_diff.t WHERE id = 4321").await?;
    dst.query_drop("INSERT INTO mv_diff.t (id, k) VALUES (99999, 1)").await?;
    dst.query_drop("UPDATE mv_diff.t SET pad = UPPER(pad) WHERE id = 2500").await?;
    let (code, out, err) = run("diff-verify", &verify).await?;
    ensure!(code == 3, "a damaged target must fail verification with exit 3, got {code}: {out}\n{err}");
    let report = field(&out, "checksum").context("no checksum in the summary")?;
    let mismatches = report["tables"][0]["mismatches"].as_array().cloned().unwrap_or_default();
    let keys = |kind: &str| -> Vec<String> {
        mismatches
            .iter()
            .flat_map(|m| m[kind].as_array().cloned().unwrap_or_default())
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    };
    let (mut changed, missing, extra) = (keys("changed"), keys("missing"), keys("extra"));
    changed.sort();
    ensure!(changed == ["1234", "2500"], "changed keys: {changed:?} in {report}");
    ensure!(missing == ["4321"], "missing keys: {missing:?}");
    ensure!(extra == ["99999"], "extra keys: {extra:?}");
    Ok(())
}

#[tokio::test]
async fn a_busy_source_pauses_the_copy_with_the_reason_shown() -> anyhow::Result<()> {
    let (a, b) = (source()?, target()?);
    let (mut src, mut dst) = (a.conn().await?, b.conn().await?);
    fresh(&mut src, &mut dst, "mv_throttle", 20_000).await?;
    // A statement that keeps running makes Threads_running 2 while the
    // engine's own check runs: over a limit of 1.
    let mut busy = a.conn().await?;
    let busy_id = busy.id();
    let sleeper = tokio::spawn(async move { busy.query_drop("SELECT SLEEP(60)").await });
    until("the busy statement to run", Duration::from_secs(10), || {
        let a = &a;
        async move {
            let mut probe = a.conn().await?;
            let running: Option<u64> = probe
                .query_first(format!(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {busy_id} AND INFO LIKE 'SELECT SLEEP%'"
                ))
                .await?;
            Ok(running == Some(1))
        }
    })
    .await?;

    let cp = checkpoint_file("throttle")?;
    let mut args = then(&move_args(&a, &b, &["mv_throttle.t=mv_throttle.t"], &cp, 4_100_000_010), "caught-up");
    args.extend(["--max-threads-running".into(), "1".into()]);
    let engine = Engine::start("throttle", &args)?;
    let stderr = engine.stderr.clone();
    until("the progress to show the throttle", Duration::from_secs(30), || {
        let stderr = stderr.clone();
        async move { Ok(std::fs::read_to_string(&stderr)?.contains("Threads_running")) }
    })
    .await?;
    let copied = || checkpoint(&cp)["tables"][0]["rowsCopied"].as_u64().unwrap_or(0);
    let paused_at = copied();
    ensure!(paused_at < 20_000, "the copy went on while throttled: {paused_at} rows");
    holds_for("the copy to stay paused", Duration::from_secs(2), Duration::from_millis(100), || {
        Ok(copied() == paused_at)
    })?;

    src.query_drop(format!("KILL QUERY {busy_id}")).await?;
    let _ = sleeper.await;
    let (code, out, err) = engine.finish(Duration::from_secs(60)).await?;
    ensure!(code == 0, "the copy did not finish after the throttle lifted ({code}): {out}\n{err}");
    let n = compare(&mut src, &mut dst, "mv_throttle.t", "mv_throttle.t").await?;
    ensure!(n == 20_000, "{n} rows");
    Ok(())
}
