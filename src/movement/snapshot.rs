//! A consistent snapshot of some tables, shared by several connections, with
//! the binary log position it corresponds to.
//!
//! The tables are read-locked only for as long as it takes each reader to
//! open its transaction and one position to be read: `FLUSH TABLES ... WITH
//! READ LOCK` waits for transactions writing those tables to finish, so every
//! commit before the position is in every reader's view and none after it.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::checkpoint::BinlogPosition;
use super::endpoint::Endpoint;
use super::error::{At, MovementError, Result};
use super::schema::TableName;
use crate::mysql::{Flavor, sql};

/// How long the lock may wait for running writers. Writes to the tables
/// queue behind a waiting lock, so this is also the longest stall the
/// snapshot can cause; past it the attempt fails and is retried later.
const LOCK_WAIT: Duration = Duration::from_secs(5);

pub struct Snapshot {
    pub position: BinlogPosition,
    /// Connections inside the snapshot's transaction.
    pub readers: Vec<Conn>,
}

pub async fn take(source: &Endpoint, flavor: Flavor, tables: &[&TableName], readers: usize) -> Result<Snapshot> {
    let at = |r| At::at(r, &source.name);
    let mut conns = Vec::with_capacity(readers);
    for _ in 0..readers {
        let mut c = source.connect().await?;
        c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await.at(&source.name)?;
        conns.push(c);
    }
    let mut lock = source.connect().await?;
    // Bounded like every locking session: an operator that dies between
    // the FLUSH and the UNLOCK leaves writers blocked only until the server
    // drops the idle session, not for the default eight hours.
    at(lock.query_drop(super::session::lock_session_settings(LOCK_WAIT)).await)?;
    let list = tables.iter().map(|t| t.sql()).collect::<Vec<_>>().join(", ");
    at(lock.query_drop(format!("FLUSH TABLES {list} WITH READ LOCK")).await)?;
    let opened = async {
        for c in conns.iter_mut() {
            c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await.at(&source.name)?;
        }
        position(&mut lock, &source.name, flavor).await
    }
    .await;
    // Unlock whatever happened: a failed snapshot must not leave writers blocked.
    let unlocked = lock.query_drop("UNLOCK TABLES").await;
    let position = opened?;
    at(unlocked)?;
    Ok(Snapshot { position, readers: conns })
}

/// The end of the binary log now, with the GTID position for people.
pub async fn position(conn: &mut Conn, endpoint: &str, flavor: Flavor) -> Result<BinlogPosition> {
    let row: Option<mysql_async::Row> = conn.query_first(sql::binlog_status(flavor)).await.at(endpoint)?;
    let row = row.ok_or_else(|| MovementError::Prerequisite {
        server: endpoint.to_string(),
        setting: "log_bin".into(),
        actual: "OFF (no binary log status)".into(),
        required: "ON".into(),
    })?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or_default();
    let gtid: Option<String> = conn.query_first(sql::executed_gtids(flavor)).await.at(endpoint)?;
    Ok(BinlogPosition { file, position: pos, gtid: gtid.filter(|g| !g.is_empty()) })
}
