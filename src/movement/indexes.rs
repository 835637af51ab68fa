//! Copying into a table without its secondary indexes, then building them
//! once: maintaining a secondary index row by row costs a bulk copy more
//! than building it at the end (pt-osc, gh-ost and myloader do the same).
//! Used by OnlineDDL's shadow table and a Migration's target tables.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::TableName;
use crate::movement::error::{At, MovementError};
use crate::mysql::sql::quote;

/// Non-unique secondary indexes of a `SHOW CREATE TABLE` text, as
/// `(name, definition)`, e.g. ``("k_1", "KEY `k_1` (`k`)")``. The copy fills
/// the target without them and adds them afterwards: maintaining a secondary
/// index row by row costs the copy more than building it once. Unique keys
/// stay (REPLACE depends on them); so do FULLTEXT and SPATIAL ones, which
/// print differently and rebuild slowly.
pub fn deferrable_indexes(create_table: &str) -> Vec<(String, String)> {
    create_table
        .lines()
        .filter_map(|line| {
            let def = line.trim().trim_end_matches(',');
            let rest = def.strip_prefix("KEY `")?;
            let mut name = String::new();
            let mut chars = rest.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '`' {
                    if chars.peek() == Some(&'`') {
                        chars.next();
                        name.push('`');
                        continue;
                    }
                    return Some((name, def.to_string()));
                }
                name.push(c);
            }
            None
        })
        .collect()
}

pub fn drop_indexes(table: &TableName, names: &[String]) -> String {
    let drops: Vec<String> =
        names.iter().map(|n| format!("DROP INDEX {}", crate::mysql::sql::quote_ident(n))).collect();
    format!("ALTER TABLE {} {}", table.sql(), drops.join(", "))
}

pub fn add_indexes(table: &TableName, definitions: &[String]) -> String {
    let adds: Vec<String> = definitions.iter().map(|d| format!("ADD {d}")).collect();
    format!("ALTER TABLE {} {}", table.sql(), adds.join(", "))
}

pub fn index_names(table: &TableName) -> String {
    format!(
        "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
        quote(&table.schema),
        quote(&table.table)
    )
}

/// Drops the table's non-unique secondary indexes (see
/// [`deferrable_indexes`]) and returns their definitions, to be added
/// back by [`restore_indexes`] once the rows are in.
pub async fn defer_indexes(conn: &mut Conn, table: &TableName) -> Result<Vec<String>, MovementError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {}", table.sql()))
        .await
        .at(&format!("reading the definition of {table}"))?;
    let Some((_, ddl)) = row else { return Ok(vec![]) };
    let deferred = deferrable_indexes(&ddl);
    if deferred.is_empty() {
        return Ok(vec![]);
    }
    let names: Vec<String> = deferred.iter().map(|(n, _)| n.clone()).collect();
    conn.query_drop(drop_indexes(table, &names)).await.at(&format!("deferring the indexes of {table}"))?;
    Ok(deferred.into_iter().map(|(_, def)| def).collect())
}

/// Adds back the deferred indexes the table does not have yet.
pub async fn restore_indexes(conn: &mut Conn, table: &TableName, definitions: &[String]) -> Result<(), MovementError> {
    let present: Vec<String> = conn.query(index_names(table)).await.at(&format!("listing the indexes of {table}"))?;
    let missing: Vec<String> = definitions
        .iter()
        .filter(|def| {
            deferrable_indexes(def)
                .first()
                .is_none_or(|(name, _)| !present.iter().any(|p| p.eq_ignore_ascii_case(name)))
        })
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    conn.query_drop(add_indexes(table, &missing)).await.at(&format!("adding the indexes of {table}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableName {
        TableName::new("shop", name)
    }

    #[test]
    fn only_plain_secondary_indexes_are_deferred() {
        let ddl = "CREATE TABLE `sbtest1` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `k` int(11) NOT NULL DEFAULT 0,\n  \
                   `c` char(120) NOT NULL DEFAULT '',\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `uc` (`c`),\n  KEY `k_1` (`k`),\n  \
                   KEY `odd``name` (`c`(10),`k`) COMMENT 'x',\n  FULLTEXT KEY `ft` (`c`),\n  \
                   CONSTRAINT `fk` FOREIGN KEY (`k`) REFERENCES `t` (`id`)\n) ENGINE=InnoDB";
        let d = deferrable_indexes(ddl);
        assert_eq!(
            d,
            vec![
                ("k_1".to_string(), "KEY `k_1` (`k`)".to_string()),
                ("odd`name".to_string(), "KEY `odd``name` (`c`(10),`k`) COMMENT 'x'".to_string()),
            ]
        );
        let names: Vec<String> = d.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(
            drop_indexes(&t("_s_new"), &names),
            "ALTER TABLE `shop`.`_s_new` DROP INDEX `k_1`, DROP INDEX `odd``name`"
        );
        let defs: Vec<String> = d.into_iter().map(|(_, def)| def).collect();
        assert_eq!(
            add_indexes(&t("_s_new"), &defs),
            "ALTER TABLE `shop`.`_s_new` ADD KEY `k_1` (`k`), ADD KEY `odd``name` (`c`(10),`k`) COMMENT 'x'"
        );
    }
}
