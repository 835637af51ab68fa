//! The statements that put rows on a target. Copy and change apply share
//! them, and both write by key: REPLACE for a row's latest image, DELETE by
//! key for a removed row. Both are idempotent, which is what makes a resumed
//! movement safe to replay past its checkpoint.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use super::error::{At, MovementError, Result};
use super::schema::{Kind, TableName};
use super::value::write_literal;
use crate::mysql::sql::quote_ident;

/// Statement text above this size is split, well under every server's
/// default `max_allowed_packet` (16 MiB on MariaDB, 64 MiB on MySQL).
pub const MAX_STATEMENT_BYTES: usize = 2 << 20;

/// Statements larger than this are checked against the target's
/// `max_allowed_packet` before they are sent; smaller ones fit any server.
const CHECKED_ABOVE: usize = 1 << 20;

/// Refuses a statement the target would refuse as too large. A single row
/// can take more than `max_allowed_packet` as SQL text (a BLOB written as a
/// hex literal doubles), and the server answers by closing the connection,
/// which reads like a network error and was retried for ever. Every retry
/// would fail the same way, so this is permanent, and names the setting.
pub async fn fits(conn: &mut Conn, endpoint: &str, sql: &str) -> Result<()> {
    if sql.len() <= CHECKED_ABOVE {
        return Ok(());
    }
    let max: Option<u64> = conn.query_first("SELECT @@max_allowed_packet").await.at(endpoint)?;
    check_size(sql.len(), max.unwrap_or(u64::MAX), endpoint)
}

fn check_size(len: usize, max_allowed_packet: u64, endpoint: &str) -> Result<()> {
    // The packet holds the command byte too.
    if (len as u64) < max_allowed_packet {
        return Ok(());
    }
    Err(MovementError::Prerequisite {
        server: endpoint.to_string(),
        setting: "max_allowed_packet".into(),
        actual: max_allowed_packet.to_string(),
        required: format!("at least {} to write a row that takes {len} bytes as SQL", len + 1),
    })
}

/// `REPLACE INTO target (cols) VALUES (...), ...`, split by size.
pub fn replace<'r>(
    target: &TableName,
    columns: &[&str],
    kinds: &[&Kind],
    rows: impl IntoIterator<Item = &'r [Value]>,
) -> Vec<String> {
    let mut b = ReplaceBuilder::new(target, columns);
    for row in rows {
        b.push(row, kinds);
    }
    b.finish()
}

/// `REPLACE INTO target (tcols) SELECT scols FROM source`, for copies inside
/// one server; the caller appends the key range. Columns pair up by position.
pub fn insert_select(
    target: &TableName,
    target_columns: &[&str],
    source_columns: &[&str],
    source: &TableName,
) -> String {
    let list = |cols: &[&str]| cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    format!(
        "REPLACE INTO {} ({}) SELECT {} FROM {}",
        target.sql(),
        list(target_columns),
        list(source_columns),
        source.sql()
    )
}

/// Builds REPLACE statements a row at a time, so a reader can render rows as
/// they stream in instead of holding a chunk of them.
pub struct ReplaceBuilder {
    head: String,
    sql: String,
    done: Vec<String>,
    bytes: usize,
}

impl ReplaceBuilder {
    pub fn new(target: &TableName, columns: &[&str]) -> ReplaceBuilder {
        let head = format!(
            "REPLACE INTO {} ({}) VALUES ",
            target.sql(),
            columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
        );
        ReplaceBuilder { head, sql: String::new(), done: Vec::new(), bytes: 0 }
    }

    pub fn push(&mut self, row: &[Value], kinds: &[&Kind]) {
        let before = self.sql.len();
        if self.sql.is_empty() {
            // Room for a whole statement up front: growing by doubling would
            // leave each queued statement holding up to twice its size.
            self.sql.reserve(MAX_STATEMENT_BYTES + 64 * 1024);
            self.sql.push_str(&self.head);
        } else {
            self.sql.push_str(", ");
        }
        self.sql.push('(');
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            write_literal(&mut self.sql, v, kinds[i]);
        }
        self.sql.push(')');
        self.bytes += self.sql.len() - before;
        if self.sql.len() >= MAX_STATEMENT_BYTES {
            self.done.push(std::mem::take(&mut self.sql));
        }
    }

    /// Statement bytes so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn finish(mut self) -> Vec<String> {
        if !self.sql.is_empty() {
            self.sql.shrink_to_fit();
            self.done.push(self.sql);
        }
        self.done
    }
}

/// `DELETE FROM target WHERE key IN (...)`, split by size.
pub fn delete<'k>(
    target: &TableName,
    key_columns: &[&str],
    key_kinds: &[&Kind],
    keys: impl IntoIterator<Item = &'k [Value]>,
) -> Vec<String> {
    let cols = key_columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let head = if key_columns.len() == 1 {
        format!("DELETE FROM {} WHERE {cols} IN (", target.sql())
    } else {
        format!("DELETE FROM {} WHERE ({cols}) IN (", target.sql())
    };
    let mut out = Vec::new();
    let mut sql = String::new();
    for key in keys {
        if sql.is_empty() {
            sql.push_str(&head);
        } else {
            sql.push_str(", ");
        }
        if key.len() > 1 {
            sql.push('(');
        }
        for (i, v) in key.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            write_literal(&mut sql, v, key_kinds[i]);
        }
        if key.len() > 1 {
            sql.push(')');
        }
        if sql.len() >= MAX_STATEMENT_BYTES {
            sql.push(')');
            out.push(std::mem::take(&mut sql));
        }
    }
    if !sql.is_empty() {
        sql.push(')');
        out.push(sql);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_over_max_allowed_packet_is_refused_by_name() {
        assert!(check_size(1000, 1001, "tgt").is_ok());
        let e = check_size(1000, 1000, "tgt").unwrap_err();
        assert!(e.is_permanent());
        assert_eq!(
            e.to_string(),
            "tgt: max_allowed_packet is 1000; it must be at least 1001 to write a row that takes 1000 bytes as SQL"
        );
    }

    #[test]
    fn in_server_copies_pair_columns_by_position() {
        let s = insert_select(
            &TableName::new("shop", "_orders_new"),
            &["id", "new name"],
            &["id", "old`name"],
            &TableName::new("shop", "orders"),
        );
        assert_eq!(
            s,
            "REPLACE INTO `shop`.`_orders_new` (`id`, `new name`) SELECT `id`, `old``name` FROM `shop`.`orders`"
        );
    }

    fn int() -> Kind {
        Kind::Int { bytes: 8, unsigned: false }
    }

    #[test]
    fn replace_lists_rows() {
        let t = TableName::new("db", "t");
        let text = Kind::Text { charset: "utf8mb4".into() };
        let rows = [vec![Value::Int(1), Value::Bytes(b"a".to_vec())], vec![Value::Int(2), Value::NULL]];
        let got = replace(&t, &["id", "c"], &[&int(), &text], rows.iter().map(|r| r.as_slice()));
        assert_eq!(got, vec!["REPLACE INTO `db`.`t` (`id`, `c`) VALUES (1, 'a'), (2, NULL)"]);
        assert!(replace(&t, &["id"], &[&int()], std::iter::empty()).is_empty());
    }

    #[test]
    fn large_batches_split_under_the_packet_limit() {
        let t = TableName::new("db", "t");
        let blob = Value::Bytes(vec![7u8; 100_000]);
        let rows: Vec<Vec<Value>> = (0..50).map(|i| vec![Value::Int(i), blob.clone()]).collect();
        let got = replace(&t, &["id", "b"], &[&int(), &Kind::Binary], rows.iter().map(|r| r.as_slice()));
        assert!(got.len() >= 4, "10 MB of hex must split: {}", got.len());
        assert!(got.iter().all(|s| s.len() < MAX_STATEMENT_BYTES + 300_000));
        assert_eq!(got.iter().map(|s| s.matches("), (").count() + 1).sum::<usize>(), 50, "no row lost at a split");
    }

    #[test]
    fn deletes_by_single_and_composite_keys() {
        let t = TableName::new("db", "t");
        let keys = [vec![Value::Int(1)], vec![Value::Int(2)]];
        assert_eq!(
            delete(&t, &["id"], &[&int()], keys.iter().map(|k| k.as_slice())),
            vec!["DELETE FROM `db`.`t` WHERE `id` IN (1, 2)"]
        );
        let keys = [vec![Value::Int(1), Value::Int(2)]];
        assert_eq!(
            delete(&t, &["a", "b"], &[&int(), &int()], keys.iter().map(|k| k.as_slice())),
            vec!["DELETE FROM `db`.`t` WHERE (`a`, `b`) IN ((1, 2))"]
        );
    }
}
