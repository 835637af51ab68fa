//! `incremental.mode: replication`: the target's primary replicates from the
//! source through a named replication connection (MariaDB multi-source, a
//! MySQL channel), filtered to the moved tables. The "middle machine"
//! approach: the server applies the changes, the operator only watches.
//!
//! The connection starts where the engine's own change apply stopped, at a
//! transaction boundary the checksum verified, so nothing is applied twice
//! and replication needs no idempotent mode. Its state lives in the target
//! server, so a restarted task finds it there.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::movement::{BinlogPosition, TableName};
use crate::mysql::Flavor;
use crate::mysql::sql::{quote, replica_columns};
use crate::work::error::{Doing, WorkError};

/// The replication connection (channel) of a migration.
pub fn connection_name(reader_id: u32) -> String {
    format!("switchyard_{reader_id}")
}

/// Where the target replicates from.
pub struct Source<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
}

/// Statements that create the connection at `from` and filter it to
/// `tables`; it is started separately.
pub fn configure(
    flavor: Flavor,
    name: &str,
    s: &Source<'_>,
    from: &BinlogPosition,
    tables: &[TableName],
) -> Vec<String> {
    let list = tables.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",");
    let (host, user, pass, file) = (quote(s.host), quote(s.user), quote(s.password), quote(&from.file));
    let (port, pos, ch) = (s.port, from.position, quote(name));
    if flavor.is_mariadb() {
        vec![
            // File and offset, not GTIDs: the source's GTIDs say nothing
            // about which of its transactions the copy already holds.
            format!(
                "CHANGE MASTER {ch} TO MASTER_HOST={host}, MASTER_PORT={port}, MASTER_USER={user}, \
                 MASTER_PASSWORD={pass}, MASTER_LOG_FILE={file}, MASTER_LOG_POS={pos}, MASTER_USE_GTID=no, \
                 MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1"
            ),
            // Filters are per connection, set through the session's default
            // connection, and only once it exists.
            format!("SET @@default_master_connection = {ch}"),
            format!("SET GLOBAL replicate_do_table = {}", quote(&list)),
            "SET @@default_master_connection = ''".into(),
        ]
    } else {
        let mysql_list = tables.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
        vec![
            format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST={host}, SOURCE_PORT={port}, SOURCE_USER={user}, \
                 SOURCE_PASSWORD={pass}, SOURCE_LOG_FILE={file}, SOURCE_LOG_POS={pos}, SOURCE_AUTO_POSITION=0, \
                 SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD=1, GET_SOURCE_PUBLIC_KEY=1, \
                 ASSIGN_GTIDS_TO_ANONYMOUS_TRANSACTIONS=LOCAL FOR CHANNEL {ch}"
            ),
            format!("CHANGE REPLICATION FILTER REPLICATE_DO_TABLE = ({mysql_list}) FOR CHANNEL {ch}"),
        ]
    }
}

pub fn start(flavor: Flavor, name: &str) -> String {
    if flavor.is_mariadb() {
        format!("START SLAVE {}", quote(name))
    } else {
        format!("START REPLICA FOR CHANNEL {}", quote(name))
    }
}

/// Stops and forgets the connection.
pub fn remove(flavor: Flavor, name: &str) -> Vec<String> {
    if flavor.is_mariadb() {
        vec![format!("STOP SLAVE {}", quote(name)), format!("RESET SLAVE {} ALL", quote(name))]
    } else {
        vec![
            format!("STOP REPLICA FOR CHANNEL {}", quote(name)),
            format!("RESET REPLICA ALL FOR CHANNEL {}", quote(name)),
        ]
    }
}

fn show(flavor: Flavor, name: &str) -> String {
    if flavor.is_mariadb() {
        format!("SHOW SLAVE {} STATUS", quote(name))
    } else {
        format!("SHOW REPLICA STATUS FOR CHANNEL {}", quote(name))
    }
}

/// Waits until the connection has applied up to `pos`; NULL (stopped) and
/// -1 (timed out) are both "not there".
pub fn wait_for_position(flavor: Flavor, name: &str, pos: &BinlogPosition, timeout: Duration) -> String {
    let f = if flavor.is_mariadb() { "MASTER_POS_WAIT" } else { "SOURCE_POS_WAIT" };
    format!("SELECT {f}({}, {}, {}, {})", quote(&pos.file), pos.position, timeout.as_secs().max(1), quote(name))
}

/// The connection as the target reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub io_running: bool,
    pub sql_running: bool,
    pub lag_seconds: Option<i64>,
    /// The last error of either thread.
    pub error: Option<String>,
}

/// None when the connection does not exist.
pub async fn state(conn: &mut Conn, flavor: Flavor, name: &str) -> Result<Option<State>, WorkError> {
    let row: Option<mysql_async::Row> = match conn.query_first(show(flavor, name)).await {
        Ok(r) => r,
        // MariaDB: "There is no master connection"; MySQL: no such channel.
        Err(mysql_async::Error::Server(e)) if e.code == 1617 || e.code == 3074 => return Ok(None),
        Err(e) => return Err(e).doing(|| "reading the replication connection".into()),
    };
    let Some(row) = row else { return Ok(None) };
    let cols = replica_columns(flavor);
    let text = |c: &str| row.get_opt::<Option<String>, _>(c).and_then(|r| r.ok()).flatten();
    let error = [cols.io_error, cols.sql_error].iter().filter_map(|c| text(c)).find(|e| !e.is_empty());
    Ok(Some(State {
        io_running: text(cols.io_running).as_deref() == Some("Yes"),
        sql_running: text(cols.sql_running).as_deref() == Some("Yes"),
        lag_seconds: text(cols.lag).and_then(|l| l.parse().ok()),
        error,
    }))
}

pub async fn run_all(conn: &mut Conn, statements: Vec<String>, what: &str) -> Result<(), WorkError> {
    for s in statements {
        conn.query_drop(s).await.doing(|| what.to_string())?;
    }
    Ok(())
}

/// The GTID domains in `gtid_binlog_pos` text (`0-1-10,1-33074-5`).
pub fn domains(gtid_pos: &str) -> Vec<u32> {
    gtid_pos.split(',').filter_map(|g| g.trim().split('-').next()?.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIA: Flavor = Flavor::MariaDb { major: 10, minor: 11 };
    const MYSQL: Flavor = Flavor::MySql { major: 8, minor: 4 };

    fn src() -> Source<'static> {
        Source { host: "10.0.0.5", port: 3306, user: "repl", password: "p'w" }
    }

    #[test]
    fn mariadb_connection_is_named_positioned_and_filtered() {
        let from = BinlogPosition::new("mysql-bin.000003", 1234);
        let tables = [TableName::new("shop", "orders"), TableName::new("shop", "items")];
        let s = configure(MARIA, "switchyard_7", &src(), &from, &tables);
        assert_eq!(
            s[0],
            "CHANGE MASTER 'switchyard_7' TO MASTER_HOST='10.0.0.5', MASTER_PORT=3306, MASTER_USER='repl', \
             MASTER_PASSWORD='p''w', MASTER_LOG_FILE='mysql-bin.000003', MASTER_LOG_POS=1234, MASTER_USE_GTID=no, \
             MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1"
        );
        assert_eq!(s[1], "SET @@default_master_connection = 'switchyard_7'");
        assert_eq!(s[2], "SET GLOBAL replicate_do_table = 'shop.orders,shop.items'");
        assert_eq!(s[3], "SET @@default_master_connection = ''");
        assert_eq!(start(MARIA, "switchyard_7"), "START SLAVE 'switchyard_7'");
        assert_eq!(remove(MARIA, "switchyard_7")[1], "RESET SLAVE 'switchyard_7' ALL");
        assert_eq!(
            wait_for_position(MARIA, "switchyard_7", &from, Duration::from_secs(5)),
            "SELECT MASTER_POS_WAIT('mysql-bin.000003', 1234, 5, 'switchyard_7')"
        );
    }

    #[test]
    fn mysql_channel_is_positioned_and_filtered() {
        let from = BinlogPosition::new("binlog.000009", 77);
        let s = configure(MYSQL, "switchyard_7", &src(), &from, &[TableName::new("shop", "orders")]);
        assert!(s[0].starts_with("CHANGE REPLICATION SOURCE TO SOURCE_HOST='10.0.0.5'"), "{}", s[0]);
        assert!(s[0].contains("SOURCE_LOG_FILE='binlog.000009', SOURCE_LOG_POS=77, SOURCE_AUTO_POSITION=0"));
        assert!(s[0].ends_with("FOR CHANNEL 'switchyard_7'"));
        assert_eq!(s[1], "CHANGE REPLICATION FILTER REPLICATE_DO_TABLE = (shop.orders) FOR CHANNEL 'switchyard_7'");
        assert_eq!(start(MYSQL, "c"), "START REPLICA FOR CHANNEL 'c'");
        assert!(wait_for_position(MYSQL, "c", &from, Duration::ZERO).starts_with("SELECT SOURCE_POS_WAIT("));
    }

    #[test]
    fn gtid_domains() {
        assert_eq!(domains("0-100-25,1-33074-9"), vec![0, 1]);
        assert_eq!(domains(""), Vec::<u32>::new());
    }
}
