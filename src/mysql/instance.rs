//! One server, reached over TCP with every call bounded in time: a frozen
//! server (SIGSTOP, a partition) must look unreachable, never hang a reconcile.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};

use super::sql::{self, Source};
use super::{Flavor, GtidSet};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("{0} timed out")]
    Timeout(String),
    #[error(transparent)]
    MySql(#[from] mysql_async::Error),
    #[error("unsupported server version {0:?}: Switchyard needs MariaDB 10.11+ or MySQL 8.0+")]
    Unsupported(String),
    #[error("{0}")]
    Unexpected(String),
}

/// What one observation of a server found.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub flavor: Flavor,
    pub version: String,
    pub server_id: u32,
    pub read_only: bool,
    /// No account can write: super_read_only on MySQL (see
    /// `sql::server_identity`), read_only on MariaDB.
    pub all_writes_refused: bool,
    /// MySQL's server_uuid, the source of the GTIDs it originates; None on
    /// MariaDB, whose GTIDs name the server_id.
    pub server_uuid: Option<String>,
    /// Executed GTIDs as the server printed them (MariaDB: the position).
    pub gtids: String,
    /// The executed set for comparisons (MariaDB: the binlog state).
    pub gtid_set: GtidSet,
    pub replica: Option<ReplicaStatus>,
    pub semi_sync_source: bool,
    pub semi_sync_replica: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaStatus {
    pub source_host: String,
    pub io_running: bool,
    pub sql_running: bool,
    pub lag_seconds: Option<i64>,
    pub io_errno: u32,
    pub io_error: String,
    pub sql_errno: u32,
    pub sql_error: String,
    /// GTIDs received from the source (applied or not).
    pub retrieved_gtids: String,
}

/// A connection to one server.
pub struct Instance {
    conn: Conn,
    pub flavor: Flavor,
    pub version: String,
}

impl Instance {
    pub async fn connect(host: &str, port: u16, user: &str, password: &str) -> Result<Instance, InstanceError> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false);
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts))
            .await
            .map_err(|_| InstanceError::Timeout(format!("connecting to {host}:{port}")))??;
        let version: String = bounded("SELECT VERSION()", conn.query_first("SELECT VERSION()"))
            .await??
            .ok_or_else(|| InstanceError::Unexpected("VERSION() returned nothing".into()))?;
        let flavor = Flavor::from_version(&version).ok_or_else(|| InstanceError::Unsupported(version.clone()))?;
        if !flavor.is_supported() {
            return Err(InstanceError::Unsupported(version));
        }
        Ok(Instance { conn, flavor, version })
    }

    pub async fn exec(&mut self, statement: &str) -> Result<(), InstanceError> {
        Ok(bounded(statement, self.conn.query_drop(statement)).await??)
    }

    pub async fn observe(&mut self) -> Result<Observed, InstanceError> {
        let (server_id, read_only, all_writes_refused, server_uuid): (u32, u8, u8, Option<String>) =
            bounded("server_id", self.conn.query_first(sql::server_identity(self.flavor)))
                .await??
                .ok_or_else(|| InstanceError::Unexpected("no server_id".into()))?;
        let gtids = self.executed_gtids().await?;
        let gtid_set = self.gtid_state().await?;
        let replica = self.replica_status().await?;
        let semi: Option<(u8, u8)> =
            bounded("semi-sync state", self.conn.query_first(sql::semi_sync_state(self.flavor))).await??;
        let (semi_sync_source, semi_sync_replica) = semi.map(|(a, b)| (a != 0, b != 0)).unwrap_or((false, false));
        Ok(Observed {
            flavor: self.flavor,
            version: self.version.clone(),
            server_id,
            read_only: read_only != 0,
            all_writes_refused: all_writes_refused != 0,
            server_uuid,
            gtids,
            gtid_set,
            replica,
            semi_sync_source,
            semi_sync_replica,
        })
    }

    pub async fn executed_gtids(&mut self) -> Result<String, InstanceError> {
        let gtids: Option<Option<String>> =
            bounded("executed GTIDs", self.conn.query_first(sql::executed_gtids(self.flavor))).await??;
        Ok(gtids.flatten().unwrap_or_default())
    }

    /// The executed transactions as a set to compare with another server's.
    pub async fn gtid_state(&mut self) -> Result<GtidSet, InstanceError> {
        let state: Option<Option<String>> =
            bounded("GTID state", self.conn.query_first(sql::gtid_state(self.flavor))).await??;
        GtidSet::parse(self.flavor, &state.flatten().unwrap_or_default()).map_err(InstanceError::Unexpected)
    }

    pub async fn replica_status(&mut self) -> Result<Option<ReplicaStatus>, InstanceError> {
        let row: Option<Row> =
            bounded("replica status", self.conn.query_first(sql::show_replica_status(self.flavor))).await??;
        let Some(row) = row else { return Ok(None) };
        let c = sql::replica_columns(self.flavor);
        let text = |name: &str| -> String {
            row.get_opt::<Option<String>, _>(name).and_then(Result::ok).flatten().unwrap_or_default()
        };
        let source_host = text(c.source_host);
        if source_host.is_empty() {
            return Ok(None);
        }
        Ok(Some(ReplicaStatus {
            source_host,
            io_running: text(c.io_running) == "Yes",
            sql_running: text(c.sql_running) == "Yes",
            lag_seconds: text(c.lag).parse().ok(),
            io_errno: text(c.io_errno).parse().unwrap_or(0),
            io_error: text(c.io_error),
            sql_errno: text(c.sql_errno).parse().unwrap_or(0),
            sql_error: text(c.sql_error),
            retrieved_gtids: text(c.retrieved_gtids),
        }))
    }

    pub async fn set_server_id(&mut self, id: u32) -> Result<(), InstanceError> {
        self.exec(&sql::set_server_id(id)).await
    }

    pub async fn set_read_only(&mut self, read_only: bool) -> Result<(), InstanceError> {
        // Turning read_only on waits for commits in flight (which may wait for
        // a semi-sync ack). Let the server give up first, so a timeout leaves
        // no statement running behind a dropped connection.
        self.exec(&format!("SET SESSION lock_wait_timeout = {}", QUERY_TIMEOUT.as_secs().saturating_sub(1).max(1)))
            .await?;
        self.exec(sql::set_read_only(self.flavor, read_only)).await
    }

    pub async fn set_semi_sync(
        &mut self,
        primary: bool,
        enabled: bool,
        timeout: Duration,
        wait_for: u32,
    ) -> Result<(), InstanceError> {
        for statement in sql::semi_sync(self.flavor, primary, enabled, timeout, wait_for) {
            self.exec(&statement).await?;
        }
        Ok(())
    }

    /// Replicates from `source`, positioned by GTID.
    pub async fn replicate_from(&mut self, source: &Source<'_>) -> Result<(), InstanceError> {
        self.exec(sql::stop_replica(self.flavor)).await?;
        if let Some(align) = sql::align_replica_position(self.flavor) {
            self.exec(align).await?;
        }
        self.exec(&sql::change_source(self.flavor, source)).await?;
        self.exec(sql::start_replica(self.flavor)).await
    }

    pub async fn stop_io_thread(&mut self) -> Result<(), InstanceError> {
        self.exec(sql::stop_io_thread(self.flavor)).await
    }

    /// Restarts replication so a changed semi-sync setting takes effect.
    pub async fn restart_replication(&mut self) -> Result<(), InstanceError> {
        self.exec(sql::stop_replica(self.flavor)).await?;
        self.exec(sql::start_replica(self.flavor)).await
    }

    /// Stops replicating and takes writes.
    pub async fn promote(&mut self) -> Result<(), InstanceError> {
        self.exec(sql::stop_replica(self.flavor)).await?;
        self.exec(sql::reset_replica_all(self.flavor)).await?;
        self.set_read_only(false).await
    }

    /// Waits, at most `timeout`, until `gtids` are executed here.
    pub async fn wait_for_gtids(&mut self, gtids: &str, timeout: Duration) -> Result<bool, InstanceError> {
        if gtids.is_empty() {
            return Ok(true);
        }
        let statement = sql::wait_for_gtids(self.flavor, gtids, timeout);
        let result: Option<Option<i64>> =
            tokio::time::timeout(timeout + QUERY_TIMEOUT, self.conn.query_first(&statement))
                .await
                .map_err(|_| InstanceError::Timeout(statement.clone()))??;
        Ok(result.flatten() == Some(0))
    }
}

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, InstanceError> {
    tokio::time::timeout(QUERY_TIMEOUT, fut).await.map_err(|_| InstanceError::Timeout(what.to_string()))
}
