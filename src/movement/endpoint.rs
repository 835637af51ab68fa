//! A server the engine reads from or writes to, and the session every engine
//! connection runs in.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::error::{At, MovementError, Result};
use crate::mysql::Flavor;

#[derive(Clone, Debug)]
pub struct Endpoint {
    /// For messages: which server said what.
    pub name: String,
    pub opts: Opts,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Every engine session: UTC so TIMESTAMP values keep their instant; strict
/// so a value that does not fit the target fails instead of being truncated;
/// zero dates allowed because the source may hold them; a 0 in an
/// AUTO_INCREMENT column stays 0; foreign keys unchecked because rows arrive
/// in key order, not in parent-before-child order; and marked as the
/// engine's, so a write fence (`fence.rs`) lets it through.
const SESSION: &str = "SET SESSION time_zone = '+00:00', \
    sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', \
    foreign_key_checks = 0, \
    character_set_client = utf8mb4, character_set_connection = utf8mb4, \
    character_set_results = binary, \
    @switchyard_sync = 1";

impl Endpoint {
    /// `mysql://user:password@host:port`.
    pub fn from_url(name: &str, url: &str) -> Result<Endpoint> {
        let opts = Opts::from_url(url).map_err(|e| MovementError::Internal(format!("{name}: bad URL: {e}")))?;
        Ok(Endpoint { name: name.to_string(), opts: OptsBuilder::from_opts(opts).prefer_socket(false).into() })
    }

    /// A connection in the engine's session.
    pub async fn connect(&self) -> Result<Conn> {
        let mut conn = self.connect_raw().await?;
        conn.query_drop(SESSION).await.at(&self.name)?;
        Ok(conn)
    }

    /// A connection with the server's defaults (for the binlog stream).
    pub async fn connect_raw(&self) -> Result<Conn> {
        tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.opts.clone()))
            .await
            .map_err(|_| MovementError::Internal(format!("{}: connecting timed out", self.name)))?
            .at(&self.name)
    }

    pub async fn flavor(&self, conn: &mut Conn) -> Result<Flavor> {
        let version: Option<String> = conn.query_first("SELECT VERSION()").await.at(&self.name)?;
        let version = version.unwrap_or_default();
        Flavor::from_version(&version).filter(|f| f.is_supported()).ok_or_else(|| MovementError::Prerequisite {
            server: self.name.clone(),
            setting: "version".into(),
            actual: version,
            required: "MariaDB 10.11+ or MySQL 8.0+".into(),
        })
    }
}
