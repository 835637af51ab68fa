//! The AUTO_INCREMENT counter, carried from a source table to the table
//! that replaces it.
//!
//! Copying rows moves `MAX(id)`, not the counter. A queue table at
//! `AUTO_INCREMENT=1000001` holding ids up to 500 would, after a swap,
//! hand out 501 again: ids that applications already saw (in logs, in other
//! systems, in rolled-back transactions) come back. So every switch raises
//! the new table's counter to the old one's, while writes are held.
//!
//! The counter is read from `SHOW CREATE TABLE`, which reports the live
//! value; `information_schema.TABLES.AUTO_INCREMENT` is cached on MySQL 8
//! (`information_schema_stats_expiry`) and may be a day old.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::TableName;
use super::error::{At, Result};

/// The `AUTO_INCREMENT=N` table option of a `SHOW CREATE TABLE` text, or
/// `None` when the table has no counter (or it was never advanced).
pub fn parse(create: &str) -> Option<u64> {
    // The table options follow the last line that closes the column list;
    // column definitions say `AUTO_INCREMENT` without `=`.
    let options = &create[create.rfind("\n)").map(|i| i + 2).unwrap_or(0)..];
    let at = options.find("AUTO_INCREMENT=")? + "AUTO_INCREMENT=".len();
    let digits: String = options[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The live counter of `table`.
pub async fn read(conn: &mut Conn, endpoint: &str, table: &TableName) -> Result<Option<u64>> {
    let row: Option<(String, String)> =
        conn.query_first(format!("SHOW CREATE TABLE {}", table.sql())).await.at(endpoint)?;
    Ok(row.and_then(|(_, create)| parse(&create)))
}

/// `ALTER TABLE … AUTO_INCREMENT = n`, or `None` when `to` already hands
/// out ids at or above `n`. InnoDB never sets a counter below `MAX(id)+1`,
/// and the statement changes metadata only, with no table rebuild.
pub fn raise_sql(to: &TableName, current: Option<u64>, n: Option<u64>) -> Option<String> {
    let n = n?;
    (current.unwrap_or(0) < n).then(|| format!("ALTER TABLE {} AUTO_INCREMENT = {n}", to.sql()))
}

/// Raises `to`'s counter to `from`'s. Both tables are on the server of
/// `conn`; the caller holds writes to `from`, so its counter is final.
pub async fn carry(conn: &mut Conn, endpoint: &str, from: &TableName, to: &TableName) -> Result<Option<u64>> {
    let n = read(conn, endpoint, from).await?;
    let current = read(conn, endpoint, to).await?;
    if let Some(sql) = raise_sql(to, current, n) {
        conn.query_drop(sql).await.at(endpoint)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "CREATE TABLE `queue` (\n  `id` bigint(20) NOT NULL AUTO_INCREMENT,\n  `note` varchar(64) DEFAULT 'AUTO_INCREMENT=7',\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=1000001 DEFAULT CHARSET=utf8mb4 COMMENT='AUTO_INCREMENT=3'";

    #[test]
    fn the_counter_is_read_from_the_table_options() {
        assert_eq!(parse(QUEUE), Some(1_000_001), "not a column default, not the comment");
        let fresh = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        assert_eq!(parse(fresh), None);
        let plain = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB";
        assert_eq!(parse(plain), None);
    }

    #[test]
    fn the_counter_only_rises() {
        let t = TableName::new("shop", "_queue_new");
        assert_eq!(
            raise_sql(&t, Some(501), Some(1_000_001)).as_deref(),
            Some("ALTER TABLE `shop`.`_queue_new` AUTO_INCREMENT = 1000001")
        );
        assert_eq!(
            raise_sql(&t, None, Some(10)).as_deref(),
            Some("ALTER TABLE `shop`.`_queue_new` AUTO_INCREMENT = 10")
        );
        assert_eq!(raise_sql(&t, Some(2_000_000), Some(1_000_001)), None, "never lowered");
        assert_eq!(raise_sql(&t, Some(5), None), None, "no counter to carry");
    }
}
