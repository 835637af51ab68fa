//! Who holds a table: the sessions a lock on it (a cut-over's LOCK TABLES, a
//! switch's fence) would wait for. Found through the server's own record of
//! metadata locks where there is one, so a DBA sees the connection to kill.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::error::{At, Result};
use super::schema::TableName;
use crate::mysql::Flavor;
use crate::mysql::sql::quote;

/// How blockers are found. MySQL instruments metadata locks in
/// performance_schema by default; MariaDB needs the `metadata_lock_info`
/// plugin (Switchyard's clusters load it). Without either, transactions open
/// longer than a second are reported instead: any of them may hold a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockView {
    PerformanceSchema,
    MetadataLockInfo,
    OpenTransactions,
}

/// Whether the MariaDB plugin is loaded: a row when it is.
const HAS_METADATA_LOCK_INFO: &str = "SELECT 1 FROM information_schema.PLUGINS \
     WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = 'ACTIVE'";

pub fn view_for(flavor: Flavor, has_metadata_lock_info: bool) -> LockView {
    match flavor {
        Flavor::MySql { .. } => LockView::PerformanceSchema,
        Flavor::MariaDb { .. } if has_metadata_lock_info => LockView::MetadataLockInfo,
        Flavor::MariaDb { .. } => LockView::OpenTransactions,
    }
}

pub async fn lock_view(conn: &mut Conn, flavor: Flavor) -> Result<LockView> {
    let has: Option<i64> = match flavor {
        Flavor::MariaDb { .. } => {
            conn.query_first(HAS_METADATA_LOCK_INFO).await.at("looking for metadata_lock_info")?
        }
        Flavor::MySql { .. } => None,
    };
    Ok(view_for(flavor, has.is_some()))
}

/// Sessions that hold any of `tables` and would make a lock on them wait:
/// `[id, user, host, command, seconds, query, what]`. A session holds a
/// table's metadata lock for as long as its transaction (or its LOCK TABLES)
/// lasts, so one that is idle ("Sleep") or busy for a second or more will
/// block; short autocommit statements are not reported. The asking session
/// is left out.
pub fn sql(view: LockView, tables: &[TableName]) -> String {
    let pairs: Vec<String> = tables.iter().map(|t| format!("({}, {})", quote(&t.schema), quote(&t.table))).collect();
    let pairs = pairs.join(", ");
    let busy = "(p.COMMAND = 'Sleep' OR p.TIME >= 1)";
    match view {
        LockView::MetadataLockInfo => format!(
            "SELECT p.ID, p.USER, p.HOST, p.COMMAND, p.TIME, COALESCE(p.INFO, ''), \
             GROUP_CONCAT(DISTINCT m.LOCK_MODE) \
             FROM information_schema.METADATA_LOCK_INFO m \
             JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID \
             WHERE (m.TABLE_SCHEMA, m.TABLE_NAME) IN ({pairs}) \
             AND p.ID <> CONNECTION_ID() AND {busy} \
             GROUP BY p.ID, p.USER, p.HOST, p.COMMAND, p.TIME, p.INFO ORDER BY p.TIME DESC LIMIT 10"
        ),
        LockView::PerformanceSchema => format!(
            "SELECT p.ID, p.USER, p.HOST, p.COMMAND, p.TIME, COALESCE(p.INFO, ''), \
             GROUP_CONCAT(DISTINCT m.LOCK_TYPE) \
             FROM performance_schema.metadata_locks m \
             JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID \
             JOIN information_schema.PROCESSLIST p ON p.ID = t.PROCESSLIST_ID \
             WHERE m.OBJECT_TYPE = 'TABLE' AND (m.OBJECT_SCHEMA, m.OBJECT_NAME) IN ({pairs}) \
             AND m.LOCK_STATUS = 'GRANTED' AND p.ID <> CONNECTION_ID() AND {busy} \
             GROUP BY p.ID, p.USER, p.HOST, p.COMMAND, p.TIME, p.INFO ORDER BY p.TIME DESC LIMIT 10"
        ),
        LockView::OpenTransactions => "SELECT p.ID, p.USER, p.HOST, p.COMMAND, \
             TIMESTAMPDIFF(SECOND, x.trx_started, NOW()), COALESCE(p.INFO, ''), 'transaction open' \
             FROM information_schema.INNODB_TRX x \
             JOIN information_schema.PROCESSLIST p ON p.ID = x.trx_mysql_thread_id \
             WHERE p.ID <> CONNECTION_ID() AND x.trx_started < NOW() - INTERVAL 1 SECOND \
             ORDER BY x.trx_started LIMIT 10"
            .to_string(),
    }
}

/// A session that would make the lock wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocker {
    pub id: u64,
    pub user: String,
    pub host: String,
    pub command: String,
    pub seconds: i64,
    pub query: String,
    pub holds: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let doing = if self.command == "Sleep" || self.query.is_empty() {
            "idle, holding the table".to_string()
        } else {
            format!("running {:?}", truncate(&self.query, 200))
        };
        write!(
            f,
            "connection {} ({}@{}) for {} s, {doing} [{}]",
            self.id, self.user, self.host, self.seconds, self.holds
        )
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub async fn find(conn: &mut Conn, view: LockView, tables: &[TableName]) -> Result<Vec<Blocker>> {
    type Row = (u64, Option<String>, Option<String>, Option<String>, Option<i64>, Option<String>, Option<String>);
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = conn.query(sql(view, tables)).await.at("finding the sessions that hold the tables")?;
    Ok(rows
        .into_iter()
        .map(|(id, user, host, command, seconds, query, holds)| Blocker {
            id,
            user: user.unwrap_or_default(),
            host: host.unwrap_or_default(),
            command: command.unwrap_or_default(),
            seconds: seconds.unwrap_or_default(),
            query: query.unwrap_or_default(),
            holds: holds.unwrap_or_default(),
        })
        .collect())
}

pub fn describe(blockers: &[Blocker]) -> String {
    blockers.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableName {
        TableName::new("shop", name)
    }

    #[test]
    fn blockers_per_flavor() {
        let maria = Flavor::MariaDb { major: 10, minor: 11 };
        let mysql = Flavor::MySql { major: 8, minor: 0 };
        assert_eq!(view_for(mysql, false), LockView::PerformanceSchema);
        assert_eq!(view_for(maria, true), LockView::MetadataLockInfo);
        assert_eq!(view_for(maria, false), LockView::OpenTransactions);
        let q = sql(LockView::PerformanceSchema, &[t("orders")]);
        assert!(q.contains("performance_schema.metadata_locks") && q.contains("IN (('shop', 'orders'))"), "{q}");
        assert!(q.contains("LOCK_STATUS = 'GRANTED'"));
        let q = sql(LockView::MetadataLockInfo, &[t("orders"), t("it's")]);
        assert!(q.contains("METADATA_LOCK_INFO") && q.contains("IN (('shop', 'orders'), ('shop', 'it''s'))"), "{q}");
        assert!(sql(LockView::OpenTransactions, &[t("orders")]).contains("INNODB_TRX"));
    }

    #[test]
    fn blockers_read_like_a_dba_would_write_them() {
        let b = Blocker {
            id: 42,
            user: "app".into(),
            host: "10.0.0.5:5555".into(),
            command: "Sleep".into(),
            seconds: 37,
            query: String::new(),
            holds: "MDL_SHARED_WRITE".into(),
        };
        assert_eq!(
            b.to_string(),
            "connection 42 (app@10.0.0.5:5555) for 37 s, idle, holding the table [MDL_SHARED_WRITE]"
        );
        let busy = Blocker { command: "Query".into(), query: "SELECT SLEEP(100)".into(), ..b.clone() };
        assert!(busy.to_string().contains("running \"SELECT SLEEP(100)\""));
        assert_eq!(describe(&[b.clone(), b]).matches("connection 42").count(), 2);
    }
}
