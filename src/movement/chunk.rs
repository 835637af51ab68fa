//! Chunks: key ranges walked in key order, sized to a time target in the
//! style of pt-online-schema-change and Spirit, so a chunk stays short on a
//! busy server and grows on an idle one.

use std::time::Duration;

use mysql_async::Value;

use super::schema::Kind;
use super::value::write_literal;
use crate::mysql::sql::quote_ident;

/// `key > after` for a composite key, spelled out column by column because
/// row-constructor comparisons do not always use the index.
pub fn after(columns: &[&str], kinds: &[&Kind], values: &[Value]) -> String {
    compare(columns, kinds, values, ">")
}

/// `key <= upto`.
pub fn upto(columns: &[&str], kinds: &[&Kind], values: &[Value]) -> String {
    compare(columns, kinds, values, "<=")
}

fn compare(columns: &[&str], kinds: &[&Kind], values: &[Value], last_op: &str) -> String {
    let strict = if last_op == "<=" { "<" } else { last_op };
    let mut alternatives = Vec::with_capacity(columns.len());
    for i in 0..columns.len() {
        let mut terms = Vec::with_capacity(i + 1);
        for j in 0..i {
            terms.push(format!("{} = {}", quote_ident(columns[j]), lit(&values[j], kinds[j])));
        }
        let op = if i + 1 == columns.len() { last_op } else { strict };
        terms.push(format!("{} {op} {}", quote_ident(columns[i]), lit(&values[i], kinds[i])));
        alternatives.push(terms.join(" AND "));
    }
    if alternatives.len() == 1 {
        alternatives.pop().unwrap_or_default()
    } else {
        format!("({})", alternatives.join(") OR ("))
    }
}

fn lit(v: &Value, k: &Kind) -> String {
    let mut s = String::new();
    write_literal(&mut s, v, k);
    s
}

/// `ORDER BY` the key.
pub fn order_by(columns: &[&str]) -> String {
    columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
}

/// Rows per chunk, adjusted after each chunk toward a time target.
#[derive(Clone, Debug)]
pub struct ChunkSizer {
    rows: u64,
    target: Duration,
    min: u64,
    max: u64,
}

impl ChunkSizer {
    pub fn new(target: Duration, max_rows: u64) -> ChunkSizer {
        let max = max_rows.max(MIN_ROWS);
        ChunkSizer { rows: 1000.min(max), target, min: MIN_ROWS, max }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// A chunk of `rows` took `took`. The next size moves halfway toward the
    /// size that would have met the target, and never more than doubles, so
    /// one slow or fast outlier does not swing it.
    pub fn observe(&mut self, rows: u64, took: Duration) {
        if rows == 0 {
            return;
        }
        let secs = took.as_secs_f64().max(0.001);
        let ideal = rows as f64 * self.target.as_secs_f64() / secs;
        let next = (self.rows as f64 + ideal) / 2.0;
        let next = next.min(self.rows as f64 * 2.0);
        self.rows = (next as u64).clamp(self.min, self.max);
    }
}

const MIN_ROWS: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    fn int() -> Kind {
        Kind::Int { bytes: 4, unsigned: false }
    }

    #[test]
    fn single_column_predicates() {
        assert_eq!(after(&["id"], &[&int()], &[Value::Int(7)]), "`id` > 7");
        assert_eq!(upto(&["id"], &[&int()], &[Value::Int(9)]), "`id` <= 9");
    }

    #[test]
    fn composite_predicates_expand() {
        let t = Kind::Text { charset: "utf8mb4".into() };
        let got = after(&["a", "b"], &[&int(), &t], &[Value::Int(1), Value::Bytes(b"x".to_vec())]);
        assert_eq!(got, "(`a` > 1) OR (`a` = 1 AND `b` > 'x')");
        let got = upto(&["a", "b", "c"], &[&int(), &int(), &int()], &[Value::Int(1), Value::Int(2), Value::Int(3)]);
        assert_eq!(got, "(`a` < 1) OR (`a` = 1 AND `b` < 2) OR (`a` = 1 AND `b` = 2 AND `c` <= 3)");
    }

    #[test]
    fn sizer_moves_toward_target_and_stays_bounded() {
        let mut s = ChunkSizer::new(Duration::from_millis(500), 50_000);
        assert_eq!(s.rows(), 1000);
        s.observe(1000, Duration::from_millis(50));
        assert_eq!(s.rows(), 2000, "at most doubles");
        for _ in 0..20 {
            let r = s.rows();
            s.observe(r, Duration::from_millis(r / 10));
        }
        assert!((4_000..=6_000).contains(&s.rows()), "settles near 5000 rows/500ms: {}", s.rows());
        s.observe(5000, Duration::from_secs(60));
        assert!(s.rows() < 3000, "a slow chunk shrinks the next: {}", s.rows());
        for _ in 0..50 {
            s.observe(s.rows(), Duration::from_millis(1));
        }
        assert_eq!(s.rows(), 50_000, "capped");
        for _ in 0..50 {
            s.observe(s.rows(), Duration::from_secs(100));
        }
        assert_eq!(s.rows(), 100, "floored");
    }
}
