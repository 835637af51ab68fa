//! Statement text per flavor. Pure, so both spellings are unit-tested.

use std::time::Duration;

use super::Flavor;

/// A single-quoted SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// An identifier in backquotes, safe for any name.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Where a replica replicates from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
}

pub fn change_source(flavor: Flavor, s: &Source<'_>) -> String {
    let (host, port, user, password) = (quote(s.host), s.port, quote(s.user), quote(s.password));
    if flavor.is_mariadb() {
        format!(
            "CHANGE MASTER TO MASTER_HOST={host}, MASTER_PORT={port}, MASTER_USER={user}, \
             MASTER_PASSWORD={password}, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, \
             MASTER_HEARTBEAT_PERIOD=1"
        )
    } else {
        // GET_SOURCE_PUBLIC_KEY: caching_sha2_password over a non-TLS link.
        format!(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST={host}, SOURCE_PORT={port}, SOURCE_USER={user}, \
             SOURCE_PASSWORD={password}, SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1, \
             SOURCE_HEARTBEAT_PERIOD=1, GET_SOURCE_PUBLIC_KEY=1"
        )
    }
}

pub fn start_replica(flavor: Flavor) -> &'static str {
    if flavor.is_mariadb() { "START SLAVE" } else { "START REPLICA" }
}

pub fn stop_replica(flavor: Flavor) -> &'static str {
    if flavor.is_mariadb() { "STOP SLAVE" } else { "STOP REPLICA" }
}

pub fn stop_io_thread(flavor: Flavor) -> &'static str {
    if flavor.is_mariadb() { "STOP SLAVE IO_THREAD" } else { "STOP REPLICA IO_THREAD" }
}

pub fn reset_replica_all(flavor: Flavor) -> &'static str {
    if flavor.is_mariadb() { "RESET SLAVE ALL" } else { "RESET REPLICA ALL" }
}

pub fn show_replica_status(flavor: Flavor) -> &'static str {
    if flavor.is_mariadb() { "SHOW SLAVE STATUS" } else { "SHOW REPLICA STATUS" }
}

/// The executed transactions: with `log_slave_updates` the binlog of a
/// MariaDB server holds its own and replicated transactions alike.
pub fn executed_gtids(flavor: Flavor) -> &'static str {
    if flavor.is_mariadb() { "SELECT @@GLOBAL.gtid_binlog_pos" } else { "SELECT @@GLOBAL.gtid_executed" }
}

/// The end of the binary log: file and offset in the first two columns.
/// MySQL 8.4 removed SHOW MASTER STATUS; 8.0 before 8.2 lacks the new name.
pub fn binlog_status(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MySql { major: 8, minor } if minor < 2 => "SHOW MASTER STATUS",
        Flavor::MySql { .. } => "SHOW BINARY LOG STATUS",
        Flavor::MariaDb { .. } => "SHOW MASTER STATUS",
    }
}

/// The executed set for comparisons (see `gtid.rs`): MariaDB's per-server
/// binlog state, MySQL's executed set.
pub fn gtid_state(flavor: Flavor) -> &'static str {
    if flavor.is_mariadb() { "SELECT @@GLOBAL.gtid_binlog_state" } else { "SELECT @@GLOBAL.gtid_executed" }
}

/// Waits until `gtids` are executed. Returns 0 when done, another value on timeout.
pub fn wait_for_gtids(flavor: Flavor, gtids: &str, timeout: Duration) -> String {
    let secs = timeout.as_secs().max(1);
    if flavor.is_mariadb() {
        format!("SELECT MASTER_GTID_WAIT({}, {secs})", quote(gtids))
    } else {
        format!("SELECT WAIT_FOR_EXECUTED_GTID_SET({}, {secs})", quote(gtids))
    }
}

/// Before a MariaDB server (e.g. a former primary) replicates with
/// `MASTER_USE_GTID=slave_pos`, its slave position must include what its own
/// binlog already holds, or it would ask for those transactions again.
pub fn align_replica_position(flavor: Flavor) -> Option<&'static str> {
    flavor.is_mariadb().then_some("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")
}

pub fn set_read_only(flavor: Flavor, read_only: bool) -> &'static str {
    match (flavor.is_mariadb(), read_only) {
        (true, true) => "SET GLOBAL read_only = ON",
        (true, false) => "SET GLOBAL read_only = OFF",
        // super_read_only also stops SUPER accounts; setting it sets read_only.
        (false, true) => "SET GLOBAL super_read_only = ON",
        (false, false) => "SET GLOBAL super_read_only = OFF, GLOBAL read_only = OFF",
    }
}

/// The server id, read_only, whether the server refuses writes from every
/// account, and MySQL's server_uuid (NULL on MariaDB, whose GTIDs name the
/// server_id). Every write refused is super_read_only on MySQL: read_only
/// alone lets an account with SUPER or CONNECTION_ADMIN (the operator's, the
/// mover's) write. On MariaDB read_only is enough, since no Switchyard account
/// but the operator has READ_ONLY ADMIN.
pub fn server_identity(flavor: Flavor) -> &'static str {
    if flavor.is_mariadb() {
        "SELECT @@server_id, @@read_only, @@read_only, NULL"
    } else {
        "SELECT @@server_id, @@read_only, @@super_read_only, @@server_uuid"
    }
}

pub fn set_server_id(id: u32) -> String {
    format!("SET GLOBAL server_id = {id}")
}

/// Semi-sync settings for a server in `role`. The source side waits AFTER_SYNC
/// (loss-less): a commit is visible only once a replica has it.
pub fn semi_sync(flavor: Flavor, primary: bool, enabled: bool, timeout: Duration, wait_for: u32) -> Vec<String> {
    let on = |b: bool| if b { "ON" } else { "OFF" };
    let ms = timeout.as_millis();
    if flavor.is_mariadb() {
        if primary {
            vec![
                "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'".into(),
                format!("SET GLOBAL rpl_semi_sync_master_timeout = {ms}"),
                format!("SET GLOBAL rpl_semi_sync_master_enabled = {}", on(enabled)),
                "SET GLOBAL rpl_semi_sync_slave_enabled = OFF".into(),
            ]
        } else {
            vec![
                "SET GLOBAL rpl_semi_sync_master_enabled = OFF".into(),
                format!("SET GLOBAL rpl_semi_sync_slave_enabled = {}", on(enabled)),
            ]
        }
    } else if primary {
        vec![
            "SET GLOBAL rpl_semi_sync_source_wait_point = 'AFTER_SYNC'".into(),
            format!("SET GLOBAL rpl_semi_sync_source_timeout = {ms}"),
            format!("SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = {}", wait_for.max(1)),
            format!("SET GLOBAL rpl_semi_sync_source_enabled = {}", on(enabled)),
            "SET GLOBAL rpl_semi_sync_replica_enabled = OFF".into(),
        ]
    } else {
        vec![
            "SET GLOBAL rpl_semi_sync_source_enabled = OFF".into(),
            format!("SET GLOBAL rpl_semi_sync_replica_enabled = {}", on(enabled)),
        ]
    }
}

/// Reads (source enabled, replica enabled) semi-sync flags.
pub fn semi_sync_state(flavor: Flavor) -> &'static str {
    if flavor.is_mariadb() {
        "SELECT @@GLOBAL.rpl_semi_sync_master_enabled, @@GLOBAL.rpl_semi_sync_slave_enabled"
    } else {
        // The plugins may be absent: 0 rather than an unknown-variable error.
        "SELECT COALESCE(MAX(IF(VARIABLE_NAME='rpl_semi_sync_source_enabled', VARIABLE_VALUE='ON', NULL)), 0), \
         COALESCE(MAX(IF(VARIABLE_NAME='rpl_semi_sync_replica_enabled', VARIABLE_VALUE='ON', NULL)), 0) \
         FROM performance_schema.global_variables \
         WHERE VARIABLE_NAME IN ('rpl_semi_sync_source_enabled','rpl_semi_sync_replica_enabled')"
    }
}

/// Column names of the replica status row, which MySQL 8 renamed.
pub struct ReplicaColumns {
    pub source_host: &'static str,
    pub io_running: &'static str,
    pub sql_running: &'static str,
    pub lag: &'static str,
    pub io_errno: &'static str,
    pub io_error: &'static str,
    pub sql_errno: &'static str,
    pub sql_error: &'static str,
    pub retrieved_gtids: &'static str,
}

pub fn replica_columns(flavor: Flavor) -> ReplicaColumns {
    if flavor.is_mariadb() {
        ReplicaColumns {
            source_host: "Master_Host",
            io_running: "Slave_IO_Running",
            sql_running: "Slave_SQL_Running",
            lag: "Seconds_Behind_Master",
            io_errno: "Last_IO_Errno",
            io_error: "Last_IO_Error",
            sql_errno: "Last_SQL_Errno",
            sql_error: "Last_SQL_Error",
            retrieved_gtids: "Gtid_IO_Pos",
        }
    } else {
        ReplicaColumns {
            source_host: "Source_Host",
            io_running: "Replica_IO_Running",
            sql_running: "Replica_SQL_Running",
            lag: "Seconds_Behind_Source",
            io_errno: "Last_IO_Errno",
            io_error: "Last_IO_Error",
            sql_errno: "Last_SQL_Errno",
            sql_error: "Last_SQL_Error",
            retrieved_gtids: "Retrieved_Gtid_Set",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_status_per_version() {
        assert_eq!(binlog_status(Flavor::MariaDb { major: 10, minor: 11 }), "SHOW MASTER STATUS");
        assert_eq!(binlog_status(Flavor::MySql { major: 8, minor: 0 }), "SHOW MASTER STATUS");
        assert_eq!(binlog_status(Flavor::MySql { major: 8, minor: 4 }), "SHOW BINARY LOG STATUS");
        assert_eq!(binlog_status(Flavor::MySql { major: 9, minor: 1 }), "SHOW BINARY LOG STATUS");
        assert!(server_identity(Flavor::MySql { major: 8, minor: 4 }).ends_with("@@super_read_only, @@server_uuid"));
        assert!(server_identity(Flavor::MariaDb { major: 10, minor: 11 }).ends_with("@@read_only, @@read_only, NULL"));
    }

    #[test]
    fn identifiers_are_backquoted() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }

    const MARIA: Flavor = Flavor::MariaDb { major: 10, minor: 11 };
    const MYSQL: Flavor = Flavor::MySql { major: 8, minor: 4 };

    #[test]
    fn quoting() {
        assert_eq!(quote(r"a'b\c"), r"'a''b\\c'");
    }

    #[test]
    fn change_source_per_flavor() {
        let s = Source { host: "10.0.0.7", port: 3306, user: "repl", password: "p'w" };
        assert_eq!(
            change_source(MARIA, &s),
            "CHANGE MASTER TO MASTER_HOST='10.0.0.7', MASTER_PORT=3306, MASTER_USER='repl', \
             MASTER_PASSWORD='p''w', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1"
        );
        assert_eq!(
            change_source(MYSQL, &s),
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST='10.0.0.7', SOURCE_PORT=3306, SOURCE_USER='repl', \
             SOURCE_PASSWORD='p''w', SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD=1, \
             GET_SOURCE_PUBLIC_KEY=1"
        );
    }

    #[test]
    fn replication_control_per_flavor() {
        assert_eq!(start_replica(MYSQL), "START REPLICA");
        assert_eq!(show_replica_status(MARIA), "SHOW SLAVE STATUS");
        assert_eq!(show_replica_status(MYSQL), "SHOW REPLICA STATUS");
        assert_eq!(stop_io_thread(MARIA), "STOP SLAVE IO_THREAD");
        assert_eq!(reset_replica_all(MYSQL), "RESET REPLICA ALL");
        assert_eq!(executed_gtids(MYSQL), "SELECT @@GLOBAL.gtid_executed");
        assert_eq!(
            wait_for_gtids(MYSQL, "u:1-5", Duration::from_secs(10)),
            "SELECT WAIT_FOR_EXECUTED_GTID_SET('u:1-5', 10)"
        );
        assert_eq!(
            wait_for_gtids(MARIA, "0-101-5", Duration::from_millis(10)),
            "SELECT MASTER_GTID_WAIT('0-101-5', 1)"
        );
        assert!(align_replica_position(MYSQL).is_none());
        assert_eq!(set_read_only(MYSQL, false), "SET GLOBAL super_read_only = OFF, GLOBAL read_only = OFF");
        assert_eq!(replica_columns(MYSQL).lag, "Seconds_Behind_Source");
    }

    #[test]
    fn semi_sync_per_flavor_and_role() {
        let t = Duration::from_secs(10);
        let mysql_primary = semi_sync(MYSQL, true, true, t, 2);
        assert!(mysql_primary.contains(&"SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = 2".to_string()));
        assert!(mysql_primary.contains(&"SET GLOBAL rpl_semi_sync_source_wait_point = 'AFTER_SYNC'".to_string()));
        let maria_primary = semi_sync(MARIA, true, true, t, 2);
        assert!(maria_primary.contains(&"SET GLOBAL rpl_semi_sync_master_timeout = 10000".to_string()));
        assert!(!maria_primary.iter().any(|s| s.contains("wait_for")), "MariaDB has no ack count");
        assert_eq!(
            semi_sync(MARIA, false, false, t, 1),
            vec!["SET GLOBAL rpl_semi_sync_master_enabled = OFF", "SET GLOBAL rpl_semi_sync_slave_enabled = OFF"]
        );
    }
}
