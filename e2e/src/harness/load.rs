//! A concurrent writer for data movement tests: it keeps a table changing
//! (inserts, updates, deletes and multi-statement transactions) while the
//! engine copies it, so the copy has to catch up with a moving source. It
//! talks to any MySQL/MariaDB URL and needs no Kubernetes.
//!
//! It checks nothing itself: the test compares source and target once the
//! load has stopped and the engine has caught up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, TxOpts};

/// Long enough for a lock wait behind another worker, short enough that a
/// server that stopped answering does not hang `stop`.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Words `c` is made of. The 4-byte characters are the point: a utf8mb3
/// column or connection anywhere on the path mangles them or fails, and the
/// 2- and 3-byte ones catch byte/char length confusion.
const WORDS: &[&str] = &[
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "café",
    "naïve",
    "中文",
    "日本語",
    "€uro",
];
const EMOJI: &[&str] = &["😀", "🚀", "🦀", "🎉", "👍🏽", "🇫🇷", "𝄞", "🧪"];

struct Shared {
    stop: AtomicBool,
    next_id: AtomicU64,
    ops: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, what: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(what.to_string());
    }
}

/// Runs `workers` tasks that each loop over random operations on `table`.
///
/// The caller creates `table` with at least `id BIGINT PRIMARY KEY, k INT NOT
/// NULL, c VARCHAR(120), pad VARCHAR(60)` (c nullable: it is sometimes set to
/// NULL); further columns are left alone. New rows take ids from a shared
/// counter starting at `first_new_id`; updates and deletes pick ids in
/// `[1, last id handed out]`, so they also hit rows the caller loaded and
/// sometimes rows that no longer exist (a committed no-op, as in real traffic).
///
/// One operation is one commit: an autocommit statement or a `BEGIN; UPDATE;
/// INSERT; DELETE; COMMIT` transaction. Errors (including deadlocks between
/// workers) are counted and the worker carries on; it never panics.
pub struct Load {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub async fn start(
        url: &str,
        table: &str,
        workers: usize,
        first_new_id: u64,
        pause: Duration,
    ) -> anyhow::Result<Load> {
        anyhow::ensure!(workers > 0, "a load needs at least one worker");
        // TCP even to 127.0.0.1: mysql_async would otherwise move loopback
        // connections to the server's socket, unlike an application's.
        let opts: Opts =
            OptsBuilder::from_opts(Opts::from_url(url).context("parsing the load url")?).prefer_socket(false).into();

        // A wrong table or url fails here, once, rather than as a stream of
        // counted errors the test only notices at the end.
        let mut conn = tokio::time::timeout(OP_TIMEOUT, Conn::new(opts.clone()))
            .await
            .context("connecting for the load timed out")?
            .context("connecting for the load")?;
        conn.query_drop(format!("SELECT id, k, c, pad FROM {table} LIMIT 0"))
            .await
            .with_context(|| format!("the load's table {table} is not usable"))?;
        conn.disconnect().await.ok();

        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(first_new_id.max(1)),
            ops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let base_seed = seed();
        let tasks = (0..workers)
            .map(|i| {
                let worker = Worker {
                    opts: opts.clone(),
                    table: table.to_string(),
                    shared: shared.clone(),
                    rng: Rng::new(base_seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                    pause,
                };
                tokio::spawn(worker.run())
            })
            .collect();
        Ok(Load { shared, tasks })
    }

    /// Committed operations so far.
    pub fn ops(&self) -> u64 {
        self.shared.ops.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }

    /// Stops the workers, waits for their in-flight operations, and returns
    /// the committed operation count. A load that never committed anything
    /// tested nothing, so that is an error.
    pub async fn stop(self) -> anyhow::Result<u64> {
        self.shared.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.context("a load worker panicked")?;
        }
        let ops = self.shared.ops.load(Ordering::Relaxed);
        if ops == 0 {
            let last = self.shared.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
            anyhow::bail!(
                "the load committed no operation ({} errors, last: {})",
                self.shared.errors.load(Ordering::Relaxed),
                last.as_deref().unwrap_or("none")
            );
        }
        Ok(ops)
    }
}

struct Worker {
    opts: Opts,
    table: String,
    shared: Arc<Shared>,
    rng: Rng,
    pause: Duration,
}

impl Worker {
    async fn run(mut self) {
        let mut conn: Option<Conn> = None;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match tokio::time::timeout(OP_TIMEOUT, Conn::new(self.opts.clone())).await {
                    Ok(Ok(c)) => conn.insert(c),
                    Ok(Err(e)) => {
                        self.shared.error(format!("connect: {e}"));
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                    Err(_) => {
                        self.shared.error("connect: timed out");
                        continue;
                    }
                },
            };
            let op = self.next_op();
            match tokio::time::timeout(OP_TIMEOUT, op.run(c, &self.table)).await {
                Ok(Ok(())) => {
                    self.shared.ops.fetch_add(1, Ordering::Relaxed);
                }
                // The server refused the statement (deadlock, lock wait
                // timeout, ...): the connection itself is fine, and an open
                // transaction is rolled back by mysql_async before its next use.
                Ok(Err(mysql_async::Error::Server(e))) => self.shared.error(format!("{op:?}: {e}")),
                Ok(Err(e)) => {
                    self.shared.error(format!("{op:?}: {e}"));
                    conn = None;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                // Cancelled mid-protocol: the connection's state is unknown.
                Err(_) => {
                    self.shared.error(format!("{op:?}: timed out"));
                    conn = None;
                }
            }
            if !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
        }
        if let Some(c) = conn {
            c.disconnect().await.ok();
        }
    }

    fn next_op(&mut self) -> Op {
        // Ids handed out so far; the counter may run ahead of committed rows.
        let max_id = self.shared.next_id.load(Ordering::Relaxed).saturating_sub(1);
        let roll = self.rng.below(100);
        if max_id == 0 || roll < 35 {
            return Op::Insert(self.new_row());
        }
        match roll {
            35..70 => Op::Update { id: self.rng.range(1, max_id), k: self.k(), c: self.c() },
            70..85 => Op::Delete { id: self.rng.range(1, max_id) },
            _ => Op::Transaction {
                update: (self.rng.range(1, max_id), self.k(), self.c()),
                insert: self.new_row(),
                delete: self.rng.range(1, max_id),
            },
        }
    }

    fn new_row(&mut self) -> Row {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let pad_len = self.rng.range(0, 60) as usize;
        let pad = (0..pad_len).map(|_| (b'a' + self.rng.below(26) as u8) as char).collect();
        Row { id, k: self.k(), c: self.c(), pad }
    }

    fn k(&mut self) -> i32 {
        self.rng.below(1_000_000) as i32
    }

    /// Sometimes NULL, sometimes with emoji, never over 120 characters.
    fn c(&mut self) -> Option<String> {
        if self.rng.below(16) == 0 {
            return None;
        }
        let with_emoji = self.rng.below(4) == 0;
        let target = self.rng.range(1, 110) as usize;
        let mut s = String::new();
        let mut chars = 0;
        while chars < target {
            let word = if with_emoji && self.rng.below(3) == 0 {
                EMOJI[self.rng.below(EMOJI.len() as u64) as usize]
            } else {
                WORDS[self.rng.below(WORDS.len() as u64) as usize]
            };
            let len = word.chars().count() + usize::from(!s.is_empty());
            if chars + len > 120 {
                break;
            }
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(word);
            chars += len;
        }
        Some(s)
    }
}

#[derive(Debug)]
struct Row {
    id: u64,
    k: i32,
    c: Option<String>,
    pad: String,
}

#[derive(Debug)]
enum Op {
    Insert(Row),
    Update { id: u64, k: i32, c: Option<String> },
    Delete { id: u64 },
    Transaction { update: (u64, i32, Option<String>), insert: Row, delete: u64 },
}

impl Op {
    async fn run(&self, conn: &mut Conn, table: &str) -> mysql_async::Result<()> {
        let insert = format!("INSERT INTO {table} (id, k, c, pad) VALUES (?, ?, ?, ?)");
        let update = format!("UPDATE {table} SET k = ?, c = ? WHERE id = ?");
        let delete = format!("DELETE FROM {table} WHERE id = ?");
        match self {
            Op::Insert(r) => conn.exec_drop(insert, (r.id, r.k, &r.c, &r.pad)).await,
            Op::Update { id, k, c } => conn.exec_drop(update, (k, c, id)).await,
            Op::Delete { id } => conn.exec_drop(delete, (id,)).await,
            Op::Transaction { update: (uid, k, c), insert: r, delete: did } => {
                let mut tx = conn.start_transaction(TxOpts::default()).await?;
                tx.exec_drop(update, (k, c, uid)).await?;
                tx.exec_drop(insert, (r.id, r.k, &r.c, &r.pad)).await?;
                tx.exec_drop(delete, (did,)).await?;
                tx.commit().await
            }
        }
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

/// xorshift64*: plenty for picking operations, and no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // xorshift never leaves zero.
        Rng(if seed == 0 { 0x2545_F491_4F6C_DD1D } else { seed })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `[0, n)`; `n` > 0.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `[lo, hi]`, inclusive.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}
