//! The write fence on the tables being switched away from, and what happens
//! around it: blockers, killing connections. Migration fences the source
//! database; ShardSplit fences the old table, or the shards on a rollback.
//!
//! The fence is made of triggers: `BEFORE INSERT/UPDATE/DELETE` on every
//! moved table, each refusing the row with SQLSTATE 45000. They are created
//! inside `LOCK TABLES … WRITE`, so
//! - taking the lock waits (at most `lockWaitTimeoutSeconds`) for every
//!   transaction that wrote to those tables to end: whatever the source
//!   acknowledged is committed, and so at or before the position read under
//!   the lock;
//! - the triggers appear on all tables at once for everyone else, and writers
//!   queued behind the lock find them when it is released;
//! - the fence outlives the connection and the operator. After a crash the
//!   source stays fenced until the restarted task settles the attempt, and
//!   after the switch it stays as the "source is read-only for the scope"
//!   that prevents split brain.
//!
//! MySQL and MariaDB have no per-database read_only, and a global
//! `read_only` would also stop what is not being moved; triggers fence
//! exactly the moved tables, for every account. They do not stop
//! `TRUNCATE` or DDL, which a migration's users are not expected to run on a
//! table they are moving.
//!
//! The engine's own sessions pass: they set [`SYNC_VARIABLE`]. A ShardSplit
//! in dual-write keeps the old table fenced against applications while the
//! reverse sync writes every shard change into it.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::movement::BinlogPosition;
use crate::movement::TableName;
use crate::movement::blockers;
use crate::movement::error::{At, MovementError};
use crate::movement::schema::FENCE_TRIGGER_PREFIX;
use crate::movement::session::lock_session_settings;
use crate::movement::snapshot;
use crate::mysql::Flavor;
use crate::mysql::sql::{quote, quote_ident};

/// The user variable every engine session sets (`endpoint.rs`); the fence
/// lets its writes through.
pub const SYNC_VARIABLE: &str = "@switchyard_sync";

/// The three row operations a trigger can refuse.
const OPERATIONS: [(&str, &str); 3] = [("INSERT", "i"), ("UPDATE", "u"), ("DELETE", "d")];

/// The fence trigger of `table` for one operation. Trigger names are
/// per schema and at most 64 characters; a long table name is shortened
/// with a hash so two tables never share a trigger name.
pub fn trigger_name(table: &str, op_suffix: &str) -> String {
    let name = format!("{FENCE_TRIGGER_PREFIX}{op_suffix}_{table}");
    if name.len() <= 64 {
        return name;
    }
    let h = crate::hash::fnv1a(table.as_bytes());
    let keep: String = table.chars().take(30).collect();
    format!("{FENCE_TRIGGER_PREFIX}{op_suffix}_{keep}_{h:08x}")
}

/// Statements that create the fence triggers of `table`. The message names
/// where the data went, for whoever hits it.
pub fn create_triggers(table: &TableName, message: &str) -> Vec<String> {
    let message: String = message.chars().take(120).collect();
    OPERATIONS
        .iter()
        .map(|(op, suffix)| {
            format!(
                "CREATE TRIGGER {}.{} BEFORE {op} ON {} FOR EACH ROW IF {SYNC_VARIABLE} IS NULL THEN \
                 SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {}; END IF",
                quote_ident(&table.schema),
                quote_ident(&trigger_name(&table.table, suffix)),
                table.sql(),
                quote(&message)
            )
        })
        .collect()
}

pub fn drop_triggers(table: &TableName) -> Vec<String> {
    OPERATIONS
        .iter()
        .map(|(_, suffix)| {
            format!(
                "DROP TRIGGER IF EXISTS {}.{}",
                quote_ident(&table.schema),
                quote_ident(&trigger_name(&table.table, suffix))
            )
        })
        .collect()
}

pub fn lock_tables(tables: &[TableName]) -> String {
    let list = tables.iter().map(|t| format!("{} WRITE", t.sql())).collect::<Vec<_>>().join(", ");
    format!("LOCK TABLES {list}")
}

/// How an attempt to fence ended.
pub enum Fenced {
    /// Every moved table refuses writes; everything acknowledged before is
    /// at or before `position`.
    Yes { position: BinlogPosition },
    /// The lock could not be had in time; these sessions held it up.
    Blocked { blockers: Vec<String> },
}

/// Takes the fence. Bounded by `lock_wait`.
pub async fn fence(
    conn: &mut Conn,
    flavor: Flavor,
    tables: &[TableName],
    lock_wait: Duration,
    message: &str,
) -> Result<Fenced, MovementError> {
    conn.query_drop(lock_session_settings(lock_wait)).await.at("setting the lock wait")?;
    if let Err(e) = conn.query_drop(lock_tables(tables)).await {
        if matches!(&e, mysql_async::Error::Server(s) if s.code == 1205) {
            // The one blocker finder; on a second failure the fence still
            // reports that it was blocked.
            let found = match blockers::lock_view(conn, flavor).await {
                Ok(view) => blockers::find(conn, view, tables).await.unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            let blockers = found.iter().map(ToString::to_string).collect();
            return Ok(Fenced::Blocked { blockers });
        }
        return Err(e).at("locking the moved tables");
    }
    let fenced = async {
        for t in tables {
            for s in drop_triggers(t).into_iter().chain(create_triggers(t, message)) {
                conn.query_drop(s).await.at(&format!("fencing {t}"))?;
            }
        }
        snapshot::position(conn, "source", flavor).await
    }
    .await;
    // Unlock whatever happened: writers are queued behind this lock.
    let unlocked = conn.query_drop("UNLOCK TABLES").await;
    match fenced {
        Ok(position) => {
            unlocked.at("unlocking the moved tables")?;
            Ok(Fenced::Yes { position })
        }
        Err(e) => {
            // Half a fence is still a fence; take it down so the source
            // serves as before, then report.
            let _ = unfence(conn, tables, lock_wait).await;
            Err(e)
        }
    }
}

/// Removes the fence. Each DROP TRIGGER waits for the table like any DDL, at
/// most `lock_wait`; on failure the source stays fenced (the safe side) and
/// the caller retries.
pub async fn unfence(conn: &mut Conn, tables: &[TableName], lock_wait: Duration) -> Result<(), MovementError> {
    let wait = lock_wait.as_secs().max(1);
    conn.query_drop(format!("SET SESSION lock_wait_timeout = {wait}")).await.at("setting the lock wait")?;
    for t in tables {
        for s in drop_triggers(t) {
            conn.query_drop(s).await.at(&format!("unfencing {t}"))?;
        }
    }
    Ok(())
}

/// Moved tables that lack one of their fence triggers.
pub async fn unfenced_tables(conn: &mut Conn, tables: &[TableName]) -> Result<Vec<String>, MovementError> {
    let mut missing = Vec::new();
    for t in tables {
        let names: Vec<String> = OPERATIONS.iter().map(|(_, s)| quote(&trigger_name(&t.table, s))).collect();
        let n: Option<u64> = conn
            .query_first(format!(
                "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {} AND EVENT_OBJECT_TABLE = {} AND TRIGGER_NAME IN ({})",
                quote(&t.schema),
                quote(&t.table),
                names.join(", ")
            ))
            .await
            .at(&format!("reading the triggers of {t}"))?;
        if n.unwrap_or(0) < OPERATIONS.len() as u64 {
            missing.push(t.to_string());
        }
    }
    Ok(missing)
}

fn schemas(tables: &[TableName]) -> String {
    let mut s: Vec<String> = tables.iter().map(|t| quote(&t.schema)).collect();
    s.sort();
    s.dedup();
    s.join(", ")
}

/// Kills the source sessions on the moved scope: those whose default schema
/// is a moved one, and those of the migrated accounts, each `(user, host)`,
/// matched on the user and on the client's host against the account's host
/// pattern (`%` and `_` as MySQL matches them), so that `app@10.%` does not
/// take `app@%`'s sessions from elsewhere with it. Replication streams and
/// this session are spared. Returns how many were killed.
pub async fn kill_connections(
    conn: &mut Conn,
    tables: &[TableName],
    accounts: &[(String, String)],
) -> Result<i32, MovementError> {
    let conds = scope_condition(tables, accounts);
    let ids: Vec<u64> = conn
        .query(format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
             AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon') AND ({conds})"
        ))
        .await
        .at("listing the source's connections")?;
    let mut killed = 0;
    for id in ids {
        // Gone already is fine: it is what we wanted.
        match conn.query_drop(format!("KILL {id}")).await {
            Ok(()) => killed += 1,
            Err(mysql_async::Error::Server(e)) if e.code == 1094 => {}
            Err(e) => return Err(e).at(&format!("killing connection {id}")),
        }
    }
    Ok(killed)
}

/// The sessions of the moved scope, as a PROCESSLIST condition. HOST is the
/// client's `host:port`.
fn scope_condition(tables: &[TableName], accounts: &[(String, String)]) -> String {
    let mut conds = vec![format!("DB IN ({})", schemas(tables))];
    for (user, host) in accounts {
        conds.push(format!("(USER = {} AND SUBSTRING_INDEX(HOST, ':', 1) LIKE {})", quote(user), quote(host)));
    }
    conds.join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_matched_by_account_not_by_user_name() {
        let accounts = vec![("app".to_string(), "10.%".to_string()), ("o'brien".to_string(), "%".to_string())];
        assert_eq!(
            scope_condition(&[TableName::new("shop", "orders")], &accounts),
            "DB IN ('shop') OR (USER = 'app' AND SUBSTRING_INDEX(HOST, ':', 1) LIKE '10.%') \
             OR (USER = 'o''brien' AND SUBSTRING_INDEX(HOST, ':', 1) LIKE '%')"
        );
    }

    #[test]
    fn trigger_names_fit_and_never_collide() {
        assert_eq!(trigger_name("orders", "i"), "switchyard_fence_i_orders");
        let long_a = "a".repeat(60);
        let long_b = format!("{}b", "a".repeat(59));
        let (x, y) = (trigger_name(&long_a, "u"), trigger_name(&long_b, "u"));
        assert!(x.len() <= 64 && y.len() <= 64, "{x} {y}");
        assert_ne!(x, y);
    }

    #[test]
    fn fence_statements() {
        let t = TableName::new("shop", "orders");
        let c = create_triggers(&t, "moved to db; it's read-only here");
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[0],
            "CREATE TRIGGER `shop`.`switchyard_fence_i_orders` BEFORE INSERT ON `shop`.`orders` FOR EACH ROW \
             IF @switchyard_sync IS NULL THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'moved to db; it''s read-only here'; END IF"
        );
        assert!(c[2].contains("BEFORE DELETE"));
        assert_eq!(drop_triggers(&t)[1], "DROP TRIGGER IF EXISTS `shop`.`switchyard_fence_u_orders`");
        let tables = [t, TableName::new("shop", "items")];
        assert_eq!(lock_tables(&tables), "LOCK TABLES `shop`.`orders` WRITE, `shop`.`items` WRITE");
        assert_eq!(schemas(&tables), "'shop'");
    }
}
