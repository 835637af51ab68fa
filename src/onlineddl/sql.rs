//! Statement text of a schema change. Pure, so the MySQL spellings that the
//! local MariaDB cannot run are still unit-tested.

use crate::movement::TableName;
use crate::mysql::sql::quote;

/// The comment that marks a cut-over sentry table. Only a table carrying it
/// is ever dropped as a sentry: the name alone could belong to a user.
pub const SENTRY_COMMENT: &str = "switchyard cut-over sentry";

/// Marks the operator's own cut-over statements in the process list, so a
/// restarted operator can find and stop a RENAME its predecessor left waiting.
pub const RENAME_MARK: &str = "/* switchyard cut-over */";

/// `<table>_shadow`. Like the sentry's, the name extends `<table>`, so it
/// sorts after it: the swap's RENAME then takes the table's metadata lock
/// before the shadow's. Were the shadow first (pt-osc's `_t_new` sorts
/// before a lower-case `t`), a reader of the shadow (a dump, a progress
/// query) would hold the RENAME there while it holds nothing on the table,
/// and the unlock would let writers commit to the original the RENAME is
/// about to put aside. Queued on the table, the RENAME holds writers back
/// until it is done, or fails as a whole at its lock wait timeout.
pub fn shadow_name(table: &str) -> String {
    format!("{table}_shadow")
}

/// `_<table>_old_<unix-seconds>`: the name the original keeps after the
/// cut-over, until `retainOldTableSeconds` have passed.
pub fn old_name(table: &str, unix_seconds: i64) -> String {
    format!("_{table}_old_{unix_seconds}")
}

/// `<table>_old_<unix-seconds>`: the sentry of an attempt, and the name the
/// swap gives the original. It must sort after `<table>`: servers take a
/// RENAME's metadata locks in name order, so the RENAME then queues on the
/// table itself (which the lock connection holds) before it ever waits for
/// the sentry. Were the sentry first, the RENAME would wait on it, and at the
/// unlock a writer already queued on the table could slip in before the
/// RENAME asks for it: a write to the old table after the change apply
/// stopped, that is, a lost write. (gh-ost's `_t_del` sorts first; see
/// gh-ost issue #653.) A name that extends `<table>` sorts after it.
pub fn sentry_name(table: &str, unix_seconds: i64) -> String {
    format!("{table}_old_{unix_seconds}")
}

/// The old-table name that goes with a sentry name.
pub fn old_name_of_sentry(table: &str, sentry: &str) -> Option<String> {
    let ts: i64 = sentry.strip_prefix(table)?.strip_prefix("_old_")?.parse().ok()?;
    Some(old_name(table, ts))
}

pub fn rename(from: &TableName, to: &TableName) -> String {
    format!("RENAME TABLE {} TO {}", from.sql(), to.sql())
}

pub fn create_shadow(table: &TableName, shadow: &TableName) -> String {
    format!("CREATE TABLE {} LIKE {}", shadow.sql(), table.sql())
}

pub fn alter(table: &TableName, clause: &str) -> String {
    format!("ALTER TABLE {} {}", table.sql(), clause.trim())
}

/// The instant attempt on the original. The server refuses with error 1846
/// (or 1845) when the change cannot be instant, and changes nothing.
pub fn alter_instant(table: &TableName, clause: &str) -> String {
    format!("ALTER TABLE {} {}, ALGORITHM=INSTANT", table.sql(), clause.trim())
}

/// Not instant-capable: ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON).
pub fn is_not_instant(code: u16) -> bool {
    matches!(code, 1845 | 1846)
}

/// A lock wait timed out (ER_LOCK_WAIT_TIMEOUT), for metadata and row locks alike.
pub const LOCK_WAIT_TIMEOUT: u16 = 1205;

pub fn create_sentry(sentry: &TableName) -> String {
    format!("CREATE TABLE {} (id INT PRIMARY KEY) ENGINE=InnoDB COMMENT={}", sentry.sql(), quote(SENTRY_COMMENT))
}

pub fn lock(table: &TableName, sentry: &TableName) -> String {
    format!("LOCK TABLES {} WRITE, {} WRITE", table.sql(), sentry.sql())
}

/// The swap. It names the sentry as the original's new name, so it fails
/// (the name is taken) for as long as the sentry exists: only the lock
/// holder, by dropping the sentry, lets it succeed.
pub fn swap(table: &TableName, shadow: &TableName, sentry: &TableName) -> String {
    format!("RENAME TABLE {} TO {}, {} TO {} {RENAME_MARK}", table.sql(), sentry.sql(), shadow.sql(), table.sql())
}

pub fn drop_table(table: &TableName) -> String {
    format!("DROP TABLE IF EXISTS {}", table.sql())
}

/// `[table comment]` of one table, or no row when it does not exist.
pub fn table_comment(table: &TableName) -> String {
    format!(
        "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
        quote(&table.schema),
        quote(&table.table)
    )
}

/// Sessions still running a cut-over RENAME of `sentry` (left by a stopped
/// operator): `[id]`.
pub fn leftover_swaps(sentry: &TableName) -> String {
    format!(
        "SELECT ID FROM information_schema.PROCESSLIST \
         WHERE ID <> CONNECTION_ID() AND INFO LIKE {} AND INFO LIKE {}",
        quote(&format!("%{RENAME_MARK}%")),
        quote(&format!("%{}%", like_escape(&sentry.table)))
    )
}

/// `[state]` of one session.
pub fn session_state(id: u64) -> String {
    format!("SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = {id}")
}

/// Escapes `%` and `_` (and the escape character) for LIKE.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// One text describing a table's columns and indexes, for a fingerprint.
pub fn definition(table: &TableName) -> String {
    let (schema, name) = (quote(&table.schema), quote(&table.table));
    format!(
        "SELECT CONCAT_WS('|', \
           (SELECT GROUP_CONCAT(CONCAT_WS(':', COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COALESCE(COLUMN_DEFAULT, 'NULL'), EXTRA) \
              ORDER BY ORDINAL_POSITION SEPARATOR ',') \
            FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name}), \
           (SELECT GROUP_CONCAT(CONCAT_WS(':', INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE) \
              ORDER BY INDEX_NAME, SEQ_IN_INDEX SEPARATOR ',') \
            FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name}))"
    )
}

/// `[INDEX_NAME, COLUMN_NAME, COLLATION_NAME, SUB_PART]` of each part of a
/// table's unique keys, in key order; '' for no column (an expression) or
/// no collation, 0 for the whole column.
pub fn unique_keys(table: &TableName) -> String {
    format!(
        "SELECT s.INDEX_NAME, COALESCE(s.COLUMN_NAME, ''), COALESCE(c.COLLATION_NAME, ''), COALESCE(s.SUB_PART, 0) \
         FROM information_schema.STATISTICS s LEFT JOIN information_schema.COLUMNS c \
           ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME \
         WHERE s.TABLE_SCHEMA = {} AND s.TABLE_NAME = {} AND s.NON_UNIQUE = 0 ORDER BY s.INDEX_NAME, s.SEQ_IN_INDEX",
        quote(&table.schema),
        quote(&table.table)
    )
}

/// `[INDEX_NAME]` of a table's indexes.
#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableName {
        TableName::new("shop", name)
    }

    #[test]
    fn names_fit_the_table_name_limit() {
        let table = "t".repeat(crate::onlineddl::validate::MAX_TABLE_LEN);
        assert_eq!(old_name(&table, 9_999_999_999).len(), 64);
        assert!(sentry_name(&table, 9_999_999_999).len() <= 64);
        assert!(shadow_name(&table).len() <= 64);
        assert_eq!(shadow_name("orders"), "orders_shadow");
    }

    /// Metadata lock keys compare as `db\0name\0` bytes.
    fn mdl_key(name: &str) -> Vec<u8> {
        let mut k = b"shop\0".to_vec();
        k.extend_from_slice(name.as_bytes());
        k.push(0);
        k
    }

    #[test]
    fn the_definition_fingerprint_covers_columns_and_indexes_only() {
        let q = definition(&t("orders"));
        assert!(q.contains("information_schema.COLUMNS") && q.contains("information_schema.STATISTICS"), "{q}");
        assert!(q.contains("ORDER BY ORDINAL_POSITION") && q.contains("ORDER BY INDEX_NAME, SEQ_IN_INDEX"));
        assert!(!q.contains("AUTO_INCREMENT"), "writes move AUTO_INCREMENT; it must not count");
    }

    #[test]
    fn the_old_name_follows_from_the_sentry() {
        assert_eq!(old_name_of_sentry("orders", "orders_old_17").as_deref(), Some("_orders_old_17"));
        assert_eq!(old_name_of_sentry("orders", "_orders_old_17"), None);
        assert_eq!(old_name_of_sentry("orders", "orders_old_x"), None);
    }

    #[test]
    fn the_swap_queues_on_the_table_before_the_sentry_and_the_shadow() {
        for table in ["orders", "a", "zzz", "t_old_1", "Orders", "_x", "客户", "9lives"] {
            assert!(mdl_key(table) < mdl_key(&sentry_name(table, 17)), "{table}: the sentry must sort after the table");
            assert!(mdl_key(table) < mdl_key(&shadow_name(table)), "{table}: the shadow must sort after the table");
        }
    }

    #[test]
    fn the_swap_renames_the_original_onto_the_sentry_name() {
        let s = swap(&t("orders"), &t("orders_shadow"), &t("orders_old_17"));
        assert!(
            s.starts_with(
                "RENAME TABLE `shop`.`orders` TO `shop`.`orders_old_17`, `shop`.`orders_shadow` TO `shop`.`orders`"
            ),
            "{s}"
        );
        assert!(s.ends_with(RENAME_MARK));
        assert_eq!(
            lock(&t("orders"), &t("orders_old_17")),
            "LOCK TABLES `shop`.`orders` WRITE, `shop`.`orders_old_17` WRITE"
        );
    }

    #[test]
    fn leftover_swaps_match_literally() {
        let q = leftover_swaps(&t("_a_b_old_1"));
        assert!(q.contains(r"'%\\_a\\_b\\_old\\_1%'"), "{q}");
        assert!(q.contains("'%/* switchyard cut-over */%'"), "{q}");
    }

    #[test]
    fn instant_alter_and_its_refusal_codes() {
        assert_eq!(alter_instant(&t("o"), " ADD c INT "), "ALTER TABLE `shop`.`o` ADD c INT, ALGORITHM=INSTANT");
        assert!(is_not_instant(1846) && is_not_instant(1845) && !is_not_instant(1064));
    }

    #[test]
    fn sentry_is_marked() {
        assert_eq!(
            create_sentry(&t("_o_old_1")),
            "CREATE TABLE `shop`.`_o_old_1` (id INT PRIMARY KEY) ENGINE=InnoDB COMMENT='switchyard cut-over sentry'"
        );
    }
}
