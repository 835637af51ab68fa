//! What a schema change does to tables, outside the cut-over: checks,
//! the shadow table, the instant path, blockers, cleanup and recovery.
//! Every function is safe to repeat.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::sql;
use super::unique::{self, KeyPart, UniqueKey};
use crate::movement::{TableName, schema};
use crate::work::error::{Doing, WorkError};

/// `DROP TABLE IF EXISTS`.
pub async fn drop_table(conn: &mut Conn, table: &TableName) -> Result<(), WorkError> {
    conn.query_drop(sql::drop_table(table)).await.doing(|| format!("dropping {table}"))
}

pub async fn exists(conn: &mut Conn, table: &TableName) -> Result<bool, WorkError> {
    let row: Option<String> =
        conn.query_first(sql::table_comment(table)).await.doing(|| format!("looking up {table}"))?;
    Ok(row.is_some())
}

/// A fingerprint of a table's columns and indexes (not of its data, nor of
/// table options such as AUTO_INCREMENT that writes move).
pub async fn definition_fingerprint(conn: &mut Conn, table: &TableName) -> Result<String, WorkError> {
    // GROUP_CONCAT stops at 1 kB by default: a wide table's last columns
    // would not count.
    conn.query_drop("SET SESSION group_concat_max_len = 4194304")
        .await
        .doing(|| "setting group_concat_max_len".into())?;
    let text: Option<String> =
        conn.query_first(sql::definition(table)).await.doing(|| format!("reading the definition of {table}"))?;
    let text = text.unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(format!("{h:016x}"))
}

/// Refuses tables a swap would break: foreign keys pointing at them would
/// follow the original to its old name, and so would triggers; the table's
/// own foreign keys cascade where the change stream cannot see.
pub async fn check_swappable(conn: &mut Conn, table: &TableName) -> Result<(), WorkError> {
    let fks: Vec<String> = schema::referencing_foreign_keys(conn, "primary", table)
        .await?
        .into_iter()
        .map(|(child, name)| format!("{child} ({name})"))
        .collect();
    if !fks.is_empty() {
        return Err(WorkError::Invalid(format!(
            "{table} is referenced by foreign keys ({}); a shadow-table swap would leave them pointing at the old table",
            fks.join(", ")
        )));
    }
    // Every own foreign key, not only the acting ones: `CREATE TABLE … LIKE`
    // drops them all, so the swapped-in table would have none.
    let own = schema::foreign_keys(conn, "primary", table).await?;
    if !own.is_empty() {
        let names: Vec<String> = own.iter().map(ToString::to_string).collect();
        return Err(WorkError::Invalid(format!(
            "{table} has foreign keys ({}); changes cascaded into it are not in the binary log, and the shadow table would lose the constraints",
            names.join(", ")
        )));
    }
    let triggers = schema::user_triggers(conn, "primary", table).await?;
    if !triggers.is_empty() {
        return Err(WorkError::Invalid(format!(
            "{table} has triggers ({}); they would stay on the old table after the swap",
            triggers.join(", ")
        )));
    }
    Ok(())
}

/// Creates the shadow table and applies the clause to it. A clause the
/// server refuses is `Invalid` with the server's message, and the shadow is
/// dropped again: the original is never touched. A shadow left by an earlier
/// pass is empty (the copy had not started), so it is recreated.
pub async fn prepare_shadow(
    conn: &mut Conn,
    table: &TableName,
    shadow: &TableName,
    clause: &str,
) -> Result<(), WorkError> {
    drop_table(conn, shadow).await?;
    conn.query_drop(sql::create_shadow(table, shadow)).await.doing(|| format!("creating {shadow}"))?;
    if let Err(e) = conn.query_drop(sql::alter(shadow, clause)).await {
        let _ = conn.query_drop(sql::drop_table(shadow)).await;
        return Err(match e {
            mysql_async::Error::Server(s) => {
                WorkError::Invalid(format!("the server refused the ALTER (error {}): {}", s.code, s.message))
            }
            other => WorkError::Sql { what: format!("altering {shadow}"), source: other },
        });
    }
    Ok(())
}

/// Unique keys of a table, each with its parts in key order.
pub async fn unique_keys(conn: &mut Conn, table: &TableName) -> Result<Vec<UniqueKey>, WorkError> {
    let rows: Vec<(String, String, String, u64)> =
        conn.query(sql::unique_keys(table)).await.doing(|| format!("reading the unique keys of {table}"))?;
    Ok(unique::group(
        rows.into_iter().map(|(name, column, collation, prefix)| (name, KeyPart { column, collation, prefix })),
    ))
}

/// Whether the clause can be applied with ALGORITHM=INSTANT, tried on an
/// empty copy of the table (`_<table>_probe`), which is dropped again. A
/// clause the server refuses outright is `Invalid`.
pub async fn instant_capable(conn: &mut Conn, table: &TableName, clause: &str) -> Result<bool, WorkError> {
    let probe = TableName::new(&table.schema, &format!("_{}_probe", table.table));
    drop_table(conn, &probe).await?;
    conn.query_drop(sql::create_shadow(table, &probe)).await.doing(|| format!("creating {probe}"))?;
    let tried = conn.query_drop(sql::alter_instant(&probe, clause)).await;
    drop_table(conn, &probe).await?;
    match tried {
        Ok(()) => Ok(true),
        Err(mysql_async::Error::Server(s)) if sql::is_not_instant(s.code) => Ok(false),
        Err(mysql_async::Error::Server(s)) => {
            Err(WorkError::Invalid(format!("the server refused the ALTER (error {}): {}", s.code, s.message)))
        }
        Err(e) => Err(WorkError::Sql { what: format!("probing {probe}"), source: e }),
    }
}

/// Outcome of trying ALGORITHM=INSTANT on the original.
#[derive(Debug, PartialEq, Eq)]
pub enum Instant {
    Done,
    /// The server cannot make this change instantly (its message).
    NotCapable(String),
    /// The table's metadata lock was not free within the wait.
    Busy(String),
}

/// The instant ALTER is bounded by `lock_wait`: waiting longer on a busy
/// table would queue every writer behind it.
pub async fn try_instant(
    conn: &mut Conn,
    table: &TableName,
    clause: &str,
    lock_wait: Duration,
) -> Result<Instant, WorkError> {
    conn.query_drop(format!("SET SESSION lock_wait_timeout = {}", lock_wait.as_secs().max(1)))
        .await
        .doing(|| "setting lock_wait_timeout".into())?;
    match conn.query_drop(sql::alter_instant(table, clause)).await {
        Ok(()) => Ok(Instant::Done),
        Err(mysql_async::Error::Server(s)) if sql::is_not_instant(s.code) => Ok(Instant::NotCapable(s.message)),
        Err(mysql_async::Error::Server(s)) if s.code == sql::LOCK_WAIT_TIMEOUT => Ok(Instant::Busy(s.message)),
        Err(e) => Err(WorkError::Sql { what: format!("ALTER {table} ALGORITHM=INSTANT"), source: e }),
    }
}

/// Drops `sentry` only if it is one (by its comment). True if it existed.
pub async fn drop_sentry(conn: &mut Conn, sentry: &TableName) -> Result<bool, WorkError> {
    let comment: Option<String> =
        conn.query_first(sql::table_comment(sentry)).await.doing(|| format!("looking up {sentry}"))?;
    match comment {
        Some(c) if c == sql::SENTRY_COMMENT => {
            drop_table(conn, sentry).await?;
            Ok(true)
        }
        Some(_) => {
            Err(WorkError::Inconsistent(format!("{sentry} exists and is not a cut-over sentry; refusing to drop it")))
        }
        None => Ok(false),
    }
}

/// How an interrupted cut-over attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovered {
    /// The swap happened: the original now carries the sentry's name.
    Swapped,
    /// It did not: the original serves as before, the sentry is gone.
    RolledBack,
}

/// Settles an attempt whose operator stopped mid-way. Its lock died with
/// its connection; a RENAME it left waiting is killed first, so what the
/// tables say afterwards is final. The two-table RENAME is atomic, so the
/// shadow's existence tells which way it went.
pub async fn recover(
    conn: &mut Conn,
    table: &TableName,
    shadow: &TableName,
    sentry: &TableName,
) -> Result<Recovered, WorkError> {
    for _ in 0..50 {
        let ids: Vec<u64> = conn.query(sql::leftover_swaps(sentry)).await.doing(|| "listing leftover swaps".into())?;
        if ids.is_empty() {
            break;
        }
        for id in ids {
            // Gone already is fine.
            let _ = conn.query_drop(format!("KILL {id}")).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sentry_is = match conn
        .query_first::<String, _>(sql::table_comment(sentry))
        .await
        .doing(|| format!("looking up {sentry}"))?
    {
        None => Sentry::Missing,
        Some(c) if c == sql::SENTRY_COMMENT => Sentry::StillSentry,
        Some(_) => Sentry::Original,
    };
    let old = sql::old_name_of_sentry(&table.table, &sentry.table).map(|o| TableName::new(&table.schema, &o));
    let old_exists = match &old {
        Some(o) => exists(conn, o).await?,
        None => false,
    };
    let found = Found {
        shadow: exists(conn, shadow).await?,
        sentry: sentry_is,
        table: exists(conn, table).await?,
        old: old_exists,
    };
    match judge(&found) {
        Ok(Recovered::RolledBack) => {
            drop_sentry(conn, sentry).await?;
            Ok(Recovered::RolledBack)
        }
        Ok(r) => Ok(r),
        Err(why) => Err(WorkError::Inconsistent(format!(
            "after an interrupted cut-over of {table} ({shadow} {}, {sentry} {:?}, {table} {}): {why}",
            present(found.shadow),
            found.sentry,
            present(found.table)
        ))),
    }
}

/// What the sentry's name holds after an interrupted attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sentry {
    Missing,
    /// The empty table the attempt created: the swap did not happen.
    StillSentry,
    /// The original, renamed onto the sentry's name by the swap.
    Original,
}

/// The tables an interrupted attempt left.
#[derive(Clone, Copy, Debug)]
pub struct Found {
    pub shadow: bool,
    pub sentry: Sentry,
    pub table: bool,
    /// The original's old-table name (`_t_old_<ts>`, from the sentry's).
    pub old: bool,
}

/// Which way an interrupted attempt went. The two-table RENAME is atomic,
/// so the shadow's existence tells: still there, the swap did not happen.
/// Gone, it did, and the original is under the sentry's name, or under its
/// old-table name already if the operator stopped after renaming it once
/// more but before recording that.
pub fn judge(f: &Found) -> Result<Recovered, &'static str> {
    match (f.shadow, f.sentry, f.table) {
        (true, Sentry::Missing | Sentry::StillSentry, true) => Ok(Recovered::RolledBack),
        (false, Sentry::Original, true) => Ok(Recovered::Swapped),
        (false, Sentry::Missing, true) if f.old => Ok(Recovered::Swapped),
        (false, Sentry::StillSentry, _) => {
            Err("the shadow is gone but the sentry is still a sentry; was the shadow dropped by hand?")
        }
        _ => Err("no way the swap could have gone leaves these tables"),
    }
}

/// After a swap: gives the original, which carries the sentry's name, its
/// old-table name (`_<t>_old_<ts>`), and returns that name.
pub async fn finish_swap(conn: &mut Conn, table: &TableName, sentry: &str) -> Result<String, WorkError> {
    let old = sql::old_name_of_sentry(&table.table, sentry)
        .ok_or_else(|| WorkError::Inconsistent(format!("{sentry} is not a sentry name of {table}")))?;
    let db = &table.schema;
    retire_original(conn, &TableName::new(db, sentry), &TableName::new(db, &old)).await?;
    Ok(old)
}

/// Gives the original, which the swap left under the sentry's name, its
/// old-table name. Repeatable: done already is fine.
async fn retire_original(conn: &mut Conn, swapped: &TableName, old: &TableName) -> Result<(), WorkError> {
    let comment: Option<String> =
        conn.query_first(sql::table_comment(swapped)).await.doing(|| format!("looking up {swapped}"))?;
    match comment {
        Some(c) if c == sql::SENTRY_COMMENT => Err(WorkError::Inconsistent(format!(
            "{swapped} is still a sentry, not the original; the swap did not happen"
        ))),
        Some(_) => conn.query_drop(sql::rename(swapped, old)).await.doing(|| format!("renaming {swapped} to {old}")),
        None if exists(conn, old).await? => Ok(()),
        None => Err(WorkError::Inconsistent(format!("neither {swapped} nor {old} exists after the swap"))),
    }
}

fn present(b: bool) -> &'static str {
    if b { "exists" } else { "missing" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(shadow: bool, sentry: Sentry, table: bool, old: bool) -> Found {
        Found { shadow, sentry, table, old }
    }

    #[test]
    fn an_interrupted_attempt_is_judged_by_what_it_left() {
        use Sentry::*;
        // The RENAME did not run: the shadow is still there.
        assert_eq!(judge(&found(true, StillSentry, true, false)), Ok(Recovered::RolledBack));
        assert_eq!(judge(&found(true, Missing, true, false)), Ok(Recovered::RolledBack));
        // It ran: the original is under the sentry's name...
        assert_eq!(judge(&found(false, Original, true, false)), Ok(Recovered::Swapped));
        // ...or already under its old-table name, the status not yet written.
        assert_eq!(judge(&found(false, Missing, true, true)), Ok(Recovered::Swapped));
        // Nothing a swap leaves.
        assert!(judge(&found(false, Missing, true, false)).is_err());
        assert!(judge(&found(false, StillSentry, true, false)).is_err());
        assert!(judge(&found(true, Original, true, false)).is_err());
        assert!(judge(&found(false, Original, false, false)).is_err());
    }
}
