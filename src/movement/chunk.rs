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
    // The whole disjunction is parenthesised: callers join a lower and an
    // upper bound with AND, which binds tighter than OR. Without the outer
    // parentheses `lo AND hi` reads as `a OR (b AND c) OR d`, a superset
    // that makes every chunk re-read every row above its lower bound.
    if alternatives.len() == 1 {
        alternatives.pop().unwrap_or_default()
    } else {
        format!("(({}))", alternatives.join(") OR ("))
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
        assert_eq!(got, "((`a` > 1) OR (`a` = 1 AND `b` > 'x'))");
        let got = upto(&["a", "b", "c"], &[&int(), &int(), &int()], &[Value::Int(1), Value::Int(2), Value::Int(3)]);
        assert_eq!(got, "((`a` < 1) OR (`a` = 1 AND `b` < 2) OR (`a` = 1 AND `b` = 2 AND `c` <= 3))");
    }

    /// Evaluates the predicates this module writes (backquoted columns,
    /// integer literals, comparisons, AND, OR, parentheses) with SQL's
    /// precedence, against one row.
    fn eval(sql: &str, row: &[(&str, i64)]) -> bool {
        let mut tokens = Vec::new();
        let mut rest = sql.trim();
        while !rest.is_empty() {
            let (tok, tail) = if let Some(t) = rest.strip_prefix('`') {
                let end = t.find('`').expect("closing backquote");
                (&rest[..end + 2], &t[end + 1..])
            } else if rest.starts_with(['(', ')']) {
                rest.split_at(1)
            } else {
                let end = rest.find([' ', '(', ')']).unwrap_or(rest.len());
                rest.split_at(end)
            };
            tokens.push(tok);
            rest = tail.trim_start();
        }
        let mut pos = 0;
        let value = parse_or(&tokens, &mut pos, row);
        assert_eq!(pos, tokens.len(), "trailing tokens in {sql}");
        value
    }

    fn parse_or(t: &[&str], pos: &mut usize, row: &[(&str, i64)]) -> bool {
        let mut v = parse_and(t, pos, row);
        while t.get(*pos) == Some(&"OR") {
            *pos += 1;
            v |= parse_and(t, pos, row);
        }
        v
    }

    fn parse_and(t: &[&str], pos: &mut usize, row: &[(&str, i64)]) -> bool {
        let mut v = parse_atom(t, pos, row);
        while t.get(*pos) == Some(&"AND") {
            *pos += 1;
            v &= parse_atom(t, pos, row);
        }
        v
    }

    fn parse_atom(t: &[&str], pos: &mut usize, row: &[(&str, i64)]) -> bool {
        if t[*pos] == "(" {
            *pos += 1;
            let v = parse_or(t, pos, row);
            assert_eq!(t[*pos], ")");
            *pos += 1;
            return v;
        }
        let col = t[*pos].trim_matches('`');
        let lhs = row.iter().find(|(c, _)| *c == col).expect("known column").1;
        let rhs: i64 = t[*pos + 2].parse().expect("integer literal");
        let v = match t[*pos + 1] {
            "=" => lhs == rhs,
            "<" => lhs < rhs,
            "<=" => lhs <= rhs,
            ">" => lhs > rhs,
            op => panic!("unexpected operator {op}"),
        };
        *pos += 3;
        v
    }

    #[test]
    fn composite_ranges_select_exactly_the_rows_between_their_bounds() {
        let cols = ["a", "b", "c"];
        let kinds = [&int(), &int(), &int()];
        let grid: Vec<[i64; 3]> =
            (0..4).flat_map(|a| (0..4).flat_map(move |b| (0..4).map(move |c| [a, b, c]))).collect();
        let v = |k: &[i64; 3]| k.iter().map(|&x| Value::Int(x)).collect::<Vec<_>>();
        for width in 1..=3 {
            let cols = &cols[..width];
            let kinds = &kinds[..width];
            for lo in grid.iter().step_by(5) {
                for hi in grid.iter().step_by(7) {
                    let range =
                        format!("{} AND {}", after(cols, kinds, &v(lo)[..width]), upto(cols, kinds, &v(hi)[..width]));
                    for row in &grid {
                        let named: Vec<(&str, i64)> = cols.iter().copied().zip(row.iter().copied()).collect();
                        let key = &row[..width];
                        let want = key > &lo[..width] && key <= &hi[..width];
                        assert_eq!(eval(&range, &named), want, "{range} for {row:?}");
                    }
                }
            }
        }
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
