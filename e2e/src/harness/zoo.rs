//! The schema zoo (`e2e/fixtures/schema-zoo.sql`, a copy of the project's
//! shared production-shaped tables) under a writer that mirrors itself.
//!
//! The zoo is loaded twice: `zoo`, which the kind under test moves, and a
//! mirror database that nothing moves. The writer runs each write on `zoo`
//! and, once the server acknowledges it, the same statement on the mirror,
//! so the mirror is what the applications were told. At the end every zoo
//! table must equal its mirror row by row, on every instance. A write the
//! server refused (a fence, a duplicate key) did nothing on `zoo` and is not
//! mirrored; a write with an unknown outcome (a broken connection) is
//! counted, and a table with one is not compared (the test decides whether
//! that is acceptable).
//!
//! Statements are deterministic on both sides: the session's clock is set
//! before each pair, so `DEFAULT CURRENT_TIMESTAMP`, `ON UPDATE` columns and
//! the trigger's `CURRENT_TIMESTAMP(6)` agree. Inserts that leave the id to
//! AUTO_INCREMENT are mirrored with the id `zoo` handed out, and every such
//! id must be above every id handed out before it: an id given twice is a
//! counter the move set back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::keys::{binary16, hex, mix};
use super::mysql::mysql;

pub const FIXTURE: &str = include_str!("../../fixtures/schema-zoo.sql");
pub const ZOO: &str = "zoo";
pub const MIRROR: &str = "zoo_mirror";
/// Rows each table is filled with.
pub const ROWS: u64 = 3000;
/// `documents` ids holding a value near 1 MB: more than fit one 16 MB packet
/// together, fewer than would make the suite slow.
const LARGE: std::ops::Range<u64> = 100..120;
/// The session clock of the fill; each write moves it on by a millisecond.
const EPOCH: f64 = 1_767_225_600.0;

/// Every table of the zoo, in the order the fixture creates them.
pub const TABLES: &[&str] = &[
    "tenant_orders",
    "sessions",
    "carts",
    "cart_lines",
    "cart_notes",
    "jobs",
    "accounts",
    "products",
    "status",
    "documents",
    "balances",
    "balance_log",
    "events",
    "ledger",
    "clicks_raw",
    "客户",
];

/// The fixture's statements for database `db`.
pub fn statements(db: &str) -> Vec<String> {
    let text: String =
        FIXTURE.lines().filter(|l| !l.trim_start().starts_with("--")).map(|l| format!("{l}\n")).collect();
    text.split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace("CREATE DATABASE IF NOT EXISTS zoo ", &format!("CREATE DATABASE IF NOT EXISTS `{db}` "))
                .replace("USE zoo", &format!("USE `{db}`"))
        })
        .collect()
}

/// Creates the zoo as `zoo` and as the mirror on `ip`, each filled with the
/// same rows.
pub async fn load(ip: &str, user: &str, password: &str) -> anyhow::Result<()> {
    let mut c = mysql(ip, user, password).await?;
    c.query_drop("SET NAMES utf8mb4").await?;
    for db in [ZOO, MIRROR] {
        for s in statements(db) {
            c.query_drop(&s).await.with_context(|| format!("loading the zoo into {db}: {s}"))?;
        }
        c.query_drop(format!("SET timestamp = {EPOCH}")).await?;
        for s in fill(db) {
            c.query_drop(&s).await.with_context(|| format!("filling {db}"))?;
        }
    }
    Ok(())
}

/// The n-th session key, as an SQL literal.
pub fn session_key(n: u64) -> String {
    format!("X'{}'", hex(&binary16(n)))
}

const DOUBLES: &[&str] = &["1.7976931348623157e308", "-2.2250738585072014e-308", "0", "-1.5", "5e-324", "NULL"];
const FLOATS: &[&str] = &["3.4028234e38", "-1.17549435e-38", "0.1", "NULL"];

fn tenant(n: u64) -> String {
    format!("t{:02}", n % 20)
}

/// One row of `table` for number `n`, as a VALUES tuple over `columns(table)`.
fn row(table: &str, n: u64) -> String {
    match table {
        "tenant_orders" => format!(
            "('{}', {n}, 'ext-{n}', {}.{:010}, '2026-01-01 00:00:00' + INTERVAL {n} SECOND + INTERVAL {} MICROSECOND)",
            tenant(n),
            n * 3,
            mix(n) % 10_000_000_000,
            n * 7 % 1_000_000
        ),
        "sessions" => format!(
            "({}, {}, X'{}', {})",
            session_key(n),
            n % 100,
            "00AB".repeat((n % 32) as usize),
            if n.is_multiple_of(5) {
                "NULL".into()
            } else {
                format!("'2027-01-01 00:00:00.123' + INTERVAL {n} MINUTE")
            }
        ),
        "carts" => format!("({n}, 'owner-{n}')"),
        "cart_lines" => format!("({n}, {}, 'sku-{}', {})", n.div_ceil(3), n % 17, n % 5 + 1),
        "cart_notes" => {
            format!("({n}, {}, 'note {n}')", if n.is_multiple_of(4) { "NULL".into() } else { n.to_string() })
        }
        "jobs" => format!(
            "({n}, '{}', '{{\"n\": {n}, \"tags\": [\"a\", \"b\"], \"nested\": {{\"x\": 1.5, \"s\": \"é\"}}}}', \
             FROM_UNIXTIME({EPOCH} - {n}), FROM_UNIXTIME({EPOCH} - {n} + 60))",
            ["queued", "running", "done", "failed"][(n % 4) as usize]
        ),
        "accounts" => format!(
            "({n}, '{}{}', 'e{n}@x.io', {})",
            if n.is_multiple_of(2) { "user" } else { "USER" },
            n / 2,
            match n % 3 {
                0 => "NULL".to_string(),
                1 => format!("'Zoë {n}'"),
                _ => format!("'nick{n}'"),
            }
        ),
        "products" => format!("({n}, {}, {})", n * 10, n % 30),
        "status" => format!("({n}, '{}', {}, 'k{}')", ["new", "paid", "shipped"][(n % 3) as usize], n * 2, n % 100),
        "documents" => {
            let (body, attachment) = if LARGE.contains(&n) {
                ("REPEAT('x', 1000000)".to_string(), "UNHEX(REPEAT('00FF', 20000))".to_string())
            } else {
                (
                    format!("'body {n} ünïcödé'"),
                    if n.is_multiple_of(2) { "NULL".into() } else { "X'000102FF00'".into() },
                )
            };
            format!(
                "({n}, 'Title {n} — 📄', {body}, {attachment}, {}, {}, {}, {}, '{}{}:{:02}:{:02}.{:03}')",
                DOUBLES[(n % 6) as usize],
                FLOATS[(n % 4) as usize],
                n % 4096,
                1901 + n % 255,
                if n.is_multiple_of(2) { "-" } else { "" },
                n % 839,
                n % 60,
                n * 7 % 60,
                n % 1000
            )
        }
        "balances" => format!("({n}, {})", n * 100),
        "balance_log" => format!("({n}, {n}, {}, '2026-01-01 00:00:00.000001' + INTERVAL {n} SECOND)", n % 50),
        "events" => {
            format!("({n}, '2025-06-01' + INTERVAL {} DAY, '{}')", n % 900, ["click", "view", "buy"][(n % 3) as usize])
        }
        "ledger" => format!("({n}, '{}', {})", ["EUR", "USD", "GBP"][(n % 3) as usize], n * 11),
        "clicks_raw" => format!("('2026-01-01 00:00:00.000' + INTERVAL {n} SECOND, 'https://x.io/{n}')"),
        "客户" => format!("({n}, '名字{n}', '{}')", ["😀", "🚀", "✓", "ß"][(n % 4) as usize]),
        other => unreachable!("no rows for {other}"),
    }
}

fn columns(table: &str) -> &'static str {
    match table {
        "tenant_orders" => "tenant, id, ext_ref, amount, placed_at",
        "sessions" => "id, user_id, token, expires_at",
        "carts" => "id, owner",
        "cart_lines" => "id, cart_id, sku, qty",
        "cart_notes" => "id, cart_id, body",
        "jobs" => "id, state, payload, created_at, updated_at",
        "accounts" => "id, login, email, nickname",
        "products" => "id, price_cents, vat_pct",
        "status" => "`id`, `status`, `order`, `key`",
        "documents" => "id, title, body, attachment, score, ratio, flags, yr, dur",
        "balances" => "account_id, cents",
        "balance_log" => "id, account_id, delta, at",
        "events" => "id, happened, kind",
        "ledger" => "entry_no, book, cents",
        "clicks_raw" => "at, url",
        "客户" => "`编号`, `名字`, `emoji`",
        other => unreachable!("no columns for {other}"),
    }
}

/// The fill's INSERTs for `db`, a few hundred rows each (one at a time for
/// the rows near 1 MB).
fn fill(db: &str) -> Vec<String> {
    let mut out = Vec::new();
    for table in TABLES {
        let mut batch = Vec::new();
        for n in 1..=ROWS {
            batch.push(row(table, n));
            if batch.len() == 300 || (*table == "documents" && LARGE.contains(&(n + 1))) || n == ROWS {
                out.push(format!("INSERT INTO `{db}`.`{table}` ({}) VALUES {}", columns(table), batch.join(", ")));
                batch.clear();
            }
        }
    }
    out
}

/// One write: the statement (with `{db}` for the database) and how it is mirrored.
struct Write {
    sql: String,
    /// Set for inserts that leave the id to AUTO_INCREMENT: the mirror gets
    /// this statement with the id `zoo` handed out in place of `{id}`.
    auto_id: Option<String>,
}

impl Write {
    fn plain(sql: String) -> Write {
        Write { sql, auto_id: None }
    }
}

/// The i-th write to `table`: inserts of new rows, updates, deletes and key
/// changes, on rows that may or may not exist (both sides agree either way).
fn write(table: &'static str, i: u64) -> Write {
    let r = mix(i) % (ROWS + i / 4 + 1) + 1;
    let new = ROWS + 1 + i;
    let op = i % 5;
    let t = Write::plain;
    match (table, op) {
        ("tenant_orders", 0) => t(format!("INSERT INTO {{db}}.tenant_orders VALUES {}", row("tenant_orders", new))),
        ("tenant_orders", 1) => t(format!(
            "UPDATE {{db}}.tenant_orders SET amount = amount + 0.0000000001 WHERE tenant = '{}' AND id = {r}",
            tenant(r)
        )),
        ("tenant_orders", 2) => {
            t(format!("DELETE FROM {{db}}.tenant_orders WHERE tenant = '{}' AND id = {r}", tenant(r)))
        }
        ("tenant_orders", 3) => t(format!(
            "UPDATE {{db}}.tenant_orders SET id = id + 1000000000, ext_ref = CONCAT(ext_ref, '-m') WHERE tenant = '{}' AND id = {r}",
            tenant(r)
        )),
        ("tenant_orders", _) => t(format!(
            "UPDATE {{db}}.tenant_orders SET placed_at = placed_at + INTERVAL 1 MICROSECOND WHERE ext_ref = 'ext-{r}'"
        )),
        ("sessions", 0) => t(format!("INSERT INTO {{db}}.sessions VALUES {}", row("sessions", new))),
        ("sessions", 1) => t(format!("UPDATE {{db}}.sessions SET token = X'00' WHERE id = {}", session_key(r))),
        ("sessions", 2) | ("sessions", 4) => t(format!("DELETE FROM {{db}}.sessions WHERE id = {}", session_key(r))),
        ("sessions", _) => {
            t(format!("UPDATE {{db}}.sessions SET id = {} WHERE id = {}", session_key(new + 1_000_000), session_key(r)))
        }
        ("carts", 0) => t(format!("INSERT INTO {{db}}.carts VALUES ({new}, 'owner-{new}')")),
        ("carts", 1) => t(format!("DELETE FROM {{db}}.carts WHERE id = {r}")),
        ("carts", 2) => t(format!("UPDATE {{db}}.carts SET id = id + 1000000 WHERE id = {r}")),
        ("carts", _) => t(format!("UPDATE {{db}}.carts SET owner = CONCAT(owner, '+') WHERE id = {r}")),
        ("cart_lines", 0) => t(format!(
            "INSERT INTO {{db}}.cart_lines (cart_id, sku) SELECT id, 'sku-new' FROM {{db}}.carts WHERE id = {r}"
        )),
        ("cart_lines", 1) => t(format!("UPDATE {{db}}.cart_lines SET qty = qty + 1 WHERE id = {r}")),
        ("cart_lines", _) => t(format!("DELETE FROM {{db}}.cart_lines WHERE id = {r}")),
        ("cart_notes", 0) => t(format!("UPDATE {{db}}.cart_notes SET body = CONCAT(body, '.') WHERE id = {r}")),
        ("cart_notes", _) => t(format!("DELETE FROM {{db}}.cart_notes WHERE id = {r}")),
        ("jobs", 0) | ("jobs", 3) => Write {
            sql: format!("INSERT INTO {{db}}.jobs (payload) VALUES ('{{\"i\": {i}}}')"),
            auto_id: Some(format!("INSERT INTO {{db}}.jobs (id, payload) VALUES ({{id}}, '{{\"i\": {i}}}')")),
        },
        ("jobs", 1) => t(format!(
            "UPDATE {{db}}.jobs SET state = 'running', payload = JSON_SET(payload, '$.w', {i}) WHERE id = {r}"
        )),
        ("jobs", _) => t(format!("DELETE FROM {{db}}.jobs WHERE id = {r} OR (id > 90000000 AND id % 7 = {})", i % 7)),
        ("accounts", 0) => t(format!("INSERT INTO {{db}}.accounts VALUES {}", row("accounts", new))),
        ("accounts", 1) => t(format!("UPDATE {{db}}.accounts SET login = UPPER(login) WHERE id = {r}")),
        ("accounts", 2) => t(format!("UPDATE {{db}}.accounts SET email = CONCAT('n', email) WHERE id = {r}")),
        ("accounts", _) => t(format!("DELETE FROM {{db}}.accounts WHERE id = {r}")),
        ("products", 0) => t(format!("INSERT INTO {{db}}.products (id, price_cents) VALUES ({new}, {i})")),
        ("products", 1) | ("products", 3) => {
            t(format!("UPDATE {{db}}.products SET price_cents = price_cents + 1, vat_pct = 7 WHERE id = {r}"))
        }
        ("products", _) => t(format!("DELETE FROM {{db}}.products WHERE id = {r}")),
        ("status", 0) => t(format!("INSERT INTO {{db}}.`status` VALUES {}", row("status", new))),
        ("status", 1) | ("status", 3) => {
            t(format!("UPDATE {{db}}.`status` SET `status` = 'done', `key` = NULL WHERE `id` = {r}"))
        }
        ("status", _) => t(format!("DELETE FROM {{db}}.`status` WHERE `id` = {r}")),
        ("documents", 0) => {
            t(format!("INSERT INTO {{db}}.documents ({}) VALUES {}", columns("documents"), row("documents", new)))
        }
        ("documents", 1) => t(format!(
            "UPDATE {{db}}.documents SET body = {}, score = -score, flags = b'100000000001' WHERE id = {r}",
            if i.is_multiple_of(50) { "REPEAT('y', 500000)" } else { "CONCAT(body, '+')" }
        )),
        ("documents", 2) => {
            t(format!("UPDATE {{db}}.documents SET ratio = 1e-30, dur = '-838:59:59', yr = 2155 WHERE id = {r}"))
        }
        ("documents", _) => t(format!("DELETE FROM {{db}}.documents WHERE id = {r}")),
        ("balances", 0) => t(format!("INSERT INTO {{db}}.balances VALUES ({new}, 0)")),
        ("balances", 4) => t(format!("DELETE FROM {{db}}.balances WHERE account_id = {r}")),
        ("balances", _) => {
            t(format!("UPDATE {{db}}.balances SET cents = cents + {} WHERE account_id = {r}", i % 13 + 1))
        }
        ("balance_log", 0) => t(format!("DELETE FROM {{db}}.balance_log WHERE id = {r}")),
        ("balance_log", _) => t(format!("UPDATE {{db}}.balance_log SET delta = delta - 1 WHERE id = {r}")),
        ("events", 0) => t(format!("INSERT INTO {{db}}.events VALUES {}", row("events", new))),
        ("events", 1) => t(format!("UPDATE {{db}}.events SET happened = happened + INTERVAL 400 DAY WHERE id = {r}")),
        ("events", 2) => t(format!("UPDATE {{db}}.events SET kind = NULL WHERE id = {r}")),
        ("events", _) => t(format!("DELETE FROM {{db}}.events WHERE id = {r}")),
        ("ledger", 0) => t(format!("INSERT INTO {{db}}.ledger VALUES {}", row("ledger", new))),
        ("ledger", 1) => t(format!("UPDATE {{db}}.ledger SET cents = NULL WHERE entry_no = {r}")),
        ("ledger", 2) => t(format!("UPDATE {{db}}.ledger SET entry_no = entry_no + 1000000 WHERE entry_no = {r}")),
        ("ledger", _) => t(format!("DELETE FROM {{db}}.ledger WHERE entry_no = {r}")),
        ("clicks_raw", 0) | ("clicks_raw", 2) => {
            t(format!("INSERT INTO {{db}}.clicks_raw VALUES {}", row("clicks_raw", new)))
        }
        ("clicks_raw", _) => t(format!("DELETE FROM {{db}}.clicks_raw WHERE url = 'https://x.io/{r}'")),
        ("客户", 0) => t(format!("INSERT INTO {{db}}.`客户` VALUES {}", row("客户", new))),
        ("客户", 1) | ("客户", 3) => {
            t(format!("UPDATE {{db}}.`客户` SET `名字` = CONCAT(`名字`, '々'), emoji = '🦀' WHERE `编号` = {r}"))
        }
        ("客户", _) => t(format!("DELETE FROM {{db}}.`客户` WHERE `编号` = {r}")),
        (other, _) => unreachable!("no writes for {other}"),
    }
}

fn on(sql: &str, db: &str) -> String {
    sql.replace("{db}", &format!("`{db}`"))
}

/// A server and the account to use on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct At {
    pub ip: String,
    pub user: String,
    pub password: String,
}

impl At {
    pub fn root(ip: &str, password: &str) -> At {
        At { ip: ip.to_string(), user: "root".into(), password: password.to_string() }
    }
}

/// Where the writer sends a `zoo` table's writes now (a Migration moves some).
pub type Route = Arc<dyn Fn(&str) -> Option<At> + Send + Sync>;

#[derive(Default, Debug, Clone)]
pub struct Tally {
    /// Writes acknowledged and mirrored, per table.
    pub acked: BTreeMap<&'static str, u64>,
    /// Writes `zoo`'s server refused, per table (not mirrored).
    pub refused: BTreeMap<&'static str, u64>,
    /// Tables with a write whose outcome is unknown.
    pub uncertain: BTreeSet<&'static str>,
    /// AUTO_INCREMENT ids handed out twice or below an earlier one.
    pub reused_ids: Vec<(&'static str, u64)>,
    /// The first refusals' messages, for the test's report.
    pub messages: Vec<String>,
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Writes to `tables` round-robin, one pair every `interval`: each `zoo`
    /// table wherever `route` says, the mirror on `mirror_ip`.
    pub fn start(tables: &[&'static str], route: Route, mirror: At, interval: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let tables = tables.to_vec();
        let mirror_at = mirror;
        let (stop2, tally2) = (stop.clone(), tally.clone());
        let task = tokio::spawn(async move {
            // One connection per address: after a Migration's switch the
            // moved tables are written on the target, the rest on the source.
            let mut zoo: HashMap<At, Conn> = HashMap::new();
            let mut mirror: Option<Conn> = None;
            let mut highest: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut i: u64 = 0;
            while !stop2.load(Ordering::Relaxed) {
                tokio::time::sleep(interval).await;
                if mirror.is_none() {
                    mirror = connect(&mirror_at).await.ok();
                    if mirror.is_none() {
                        continue;
                    }
                }
                let table = tables[(i % tables.len() as u64) as usize];
                let Some(addr) = route(table) else { continue };
                if !zoo.contains_key(&addr) {
                    match connect(&addr).await {
                        Ok(c) => zoo.insert(addr.clone(), c),
                        Err(_) => continue,
                    };
                }
                let w = write(table, i / tables.len() as u64);
                let clock = format!("SET timestamp = {:.6}", EPOCH + 1.0 + i as f64 / 1000.0);
                i += 1;
                let zc = zoo.get_mut(&addr).expect("connected");
                if zc.query_drop(&clock).await.is_err() {
                    zoo.remove(&addr);
                    continue;
                }
                let outcome = tokio::time::timeout(Duration::from_secs(60), zc.query_drop(on(&w.sql, ZOO))).await;
                let mirrored = match outcome {
                    Ok(Ok(())) => match &w.auto_id {
                        None => w.sql.clone(),
                        Some(sql) => {
                            let id = zc.last_insert_id().unwrap_or(0);
                            let top = highest.entry(table).or_insert(0);
                            if id <= *top {
                                tally2.lock().unwrap().reused_ids.push((table, id));
                            }
                            *top = (*top).max(id);
                            sql.replace("{id}", &id.to_string())
                        }
                    },
                    Ok(Err(mysql_async::Error::Server(e))) => {
                        let mut t = tally2.lock().unwrap();
                        *t.refused.entry(table).or_default() += 1;
                        if t.messages.len() < 20 {
                            t.messages.push(format!("{table}: {} {}", e.code, e.message));
                        }
                        continue;
                    }
                    _ => {
                        tally2.lock().unwrap().uncertain.insert(table);
                        zoo.remove(&addr);
                        continue;
                    }
                };
                let m = mirror.as_mut().expect("connected");
                let done = async {
                    m.query_drop(&clock).await?;
                    m.query_drop(on(&mirrored, MIRROR)).await
                };
                if let Err(e) = done.await {
                    // The mirror is a plain database nobody moves: a failure
                    // there is the test's own, and it must not pass silently.
                    let mut t = tally2.lock().unwrap();
                    t.uncertain.insert(table);
                    t.messages.push(format!("mirror of {table}: {e}"));
                    mirror = None;
                    continue;
                }
                *tally2.lock().unwrap().acked.entry(table).or_default() += 1;
            }
        });
        Writer { stop, tally, task }
    }

    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap().clone()
    }

    /// Waits until every table in `tables` has `more` acknowledged writes beyond now.
    pub async fn wait_for_progress(&self, tables: &[&'static str], more: u64, timeout: Duration) -> anyhow::Result<()> {
        let start = self.tally();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = self.tally();
            let behind: Vec<&str> = tables
                .iter()
                .filter(|t| now.acked.get(*t).copied().unwrap_or(0) < start.acked.get(*t).copied().unwrap_or(0) + more)
                .copied()
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "the zoo writer made no progress on {behind:?} within {timeout:?}: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(self) -> anyhow::Result<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.context("the zoo writer panicked")?;
        Ok(self.tally.lock().unwrap().clone())
    }
}

async fn connect(at: &At) -> anyhow::Result<Conn> {
    let mut c = mysql(&at.ip, &at.user, &at.password).await?;
    c.query_drop("SET NAMES utf8mb4").await?;
    Ok(c)
}

/// Columns of `db.table`, in order, quoted.
async fn column_list(c: &mut Conn, db: &str, table: &str) -> anyhow::Result<Vec<String>> {
    let cols: Vec<String> = c
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    Ok(cols.into_iter().map(|c| format!("`{}`", c.replace('`', "``"))).collect())
}

/// Every row of `db.table`, over the mirror's columns, sorted.
async fn rows(c: &mut Conn, db: &str, table: &str, cols: &[String]) -> anyhow::Result<Vec<Vec<Value>>> {
    let list = cols.join(", ");
    let rows: Vec<Row> = c
        .query(format!("SELECT {list} FROM `{db}`.`{table}` ORDER BY {list}"))
        .await
        .with_context(|| format!("reading {db}.{table}"))?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// How `zoo.table` at `zoo_at` differs from the mirror at `mirror_at`, in
/// rows missing and extra; `None` if they are equal.
pub async fn difference(zoo_at: &At, mirror_at: &At, table: &str) -> anyhow::Result<Option<String>> {
    difference_of_union(&[(zoo_at.clone(), ZOO.to_string(), table.to_string())], mirror_at, table).await
}

/// How the union of `parts` (server, database, table: a split's shards)
/// differs from the mirror of `table`, counting duplicates.
pub async fn difference_of_union(
    parts: &[(At, String, String)],
    mirror_at: &At,
    table: &str,
) -> anyhow::Result<Option<String>> {
    let mut m = connect(mirror_at).await?;
    let cols = column_list(&mut m, MIRROR, table).await?;
    ensure!(!cols.is_empty(), "{MIRROR}.{table} has no columns on {}", mirror_at.ip);
    let want = rows(&mut m, MIRROR, table, &cols).await?;
    let mut have = Vec::new();
    for (at, db, t) in parts {
        let mut c = connect(at).await?;
        have.extend(rows(&mut c, db, t, &cols).await?);
    }
    let count = |rows: &[Vec<Value>]| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for r in rows {
            *m.entry(format!("{r:?}")).or_default() += 1;
        }
        m
    };
    let (want_n, have_n) = (count(&want), count(&have));
    if want_n == have_n {
        return Ok(None);
    }
    let short = |s: &String| s.chars().take(160).collect::<String>();
    let missing: Vec<String> = want_n.iter().filter(|(r, n)| have_n.get(*r) < Some(n)).map(|(r, _)| short(r)).collect();
    let extra: Vec<String> = have_n.iter().filter(|(r, n)| want_n.get(*r) < Some(n)).map(|(r, _)| short(r)).collect();
    let places: Vec<String> = parts.iter().map(|(at, db, t)| format!("{db}.{t}@{}", at.ip)).collect();
    Ok(Some(format!(
        "{table} in {places:?}: {} rows, the mirror {}; {} acknowledged rows missing (e.g. {:?}), {} rows never acknowledged or doubled (e.g. {:?})",
        have.len(),
        want.len(),
        missing.len(),
        &missing[..missing.len().min(3)],
        extra.len(),
        &extra[..extra.len().min(3)]
    )))
}

/// Compares every table in `tables` at each `(zoo, mirror)` address pair,
/// waiting up to `timeout` for replicas to catch up.
pub async fn assert_exact(pairs: &[(At, At)], tables: &[&'static str], timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut problems = Vec::new();
        for (zoo_at, mirror_at) in pairs {
            for t in tables {
                if let Some(d) = difference(zoo_at, mirror_at, t).await? {
                    problems.push(d);
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        ensure!(tokio::time::Instant::now() < deadline, "the zoo differs from what was acknowledged: {problems:#?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
