//! Which column of the original fills which column of the shadow table.
//!
//! Columns keep their name unless the clause renames them; the server's
//! information_schema says what the shadow has after the ALTER, and the
//! clause says only which names changed. Added columns take their defaults,
//! dropped ones are not copied.

use super::validate::unquoted_words;
use crate::movement::ColumnPair;

/// `(old, new)` column renames the clause makes: `RENAME COLUMN a TO b` and
/// `CHANGE [COLUMN] [IF EXISTS] a b <definition>`.
pub fn renames(clause: &str) -> Result<Vec<(String, String)>, String> {
    let words = unquoted_words(clause)?;
    let mut out = Vec::new();
    for part in top_level_parts(&words) {
        let upper: Vec<String> = part.iter().map(|w| w.to_ascii_uppercase()).collect();
        let at = |i: usize| upper.get(i).map(String::as_str);
        match at(0) {
            Some("RENAME") if at(1) == Some("COLUMN") => {
                let mut i = 2;
                if at(i) == Some("IF") && at(i + 1) == Some("EXISTS") {
                    i += 2;
                }
                if let (Some(old), Some("TO"), Some(new)) = (part.get(i), at(i + 1), part.get(i + 2)) {
                    out.push((ident(old), ident(new)));
                }
            }
            Some("CHANGE") => {
                let mut i = 1;
                if at(i) == Some("COLUMN") {
                    i += 1;
                }
                if at(i) == Some("IF") && at(i + 1) == Some("EXISTS") {
                    i += 2;
                }
                if let (Some(old), Some(new)) = (part.get(i), part.get(i + 1)) {
                    out.push((ident(old), ident(new)));
                }
            }
            _ => {}
        }
    }
    out.retain(|(old, new)| !old.eq_ignore_ascii_case(new));
    Ok(out)
}

/// The shadow ← original pairs: every shadow column whose name, before any
/// rename, is a column of the original. Column names compare without case,
/// as MySQL compares them.
pub fn pairs(original: &[&str], shadow: &[&str], renames: &[(String, String)]) -> Vec<ColumnPair> {
    shadow
        .iter()
        .filter_map(|&target| {
            let source = renames
                .iter()
                .find(|(_, new)| new.eq_ignore_ascii_case(target))
                .map(|(old, _)| old.as_str())
                .unwrap_or(target);
            let renamed_away = renames.iter().any(|(old, new)| old.eq_ignore_ascii_case(target) && new != old);
            let found = original.iter().find(|c| c.eq_ignore_ascii_case(source))?;
            // `a` renamed to `b` and a new `a` added: the new `a` is not the old one.
            if source == target && renamed_away {
                return None;
            }
            Some(ColumnPair { target: target.to_string(), source: found.to_string() })
        })
        .collect()
}

/// Splits words at commas outside parentheses.
fn top_level_parts(words: &[String]) -> Vec<&[String]> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, w) in words.iter().enumerate() {
        match w.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => {
                parts.push(&words[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&words[start..]);
    parts
}

fn ident(word: &str) -> String {
    word.strip_prefix('`').and_then(|w| w.strip_suffix('`')).unwrap_or(word).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn renames_are_found_in_both_spellings() {
        assert_eq!(renames("ADD c INT").unwrap(), vec![]);
        assert_eq!(renames("RENAME COLUMN a TO b").unwrap(), vec![r("a", "b")]);
        assert_eq!(
            renames("CHANGE COLUMN `old name` `new``name` VARCHAR(10) DEFAULT 'x,y', ADD z INT, CHANGE q q BIGINT")
                .unwrap(),
            vec![r("old name", "new`name")]
        );
        assert_eq!(renames("change if exists a b int").unwrap(), vec![r("a", "b")]);
        assert_eq!(
            renames("ADD INDEX i (a, b), RENAME COLUMN IF EXISTS c TO d").unwrap(),
            vec![r("c", "d")],
            "commas inside parentheses do not split clauses"
        );
    }

    fn names(p: &[ColumnPair]) -> Vec<(&str, &str)> {
        p.iter().map(|c| (c.target.as_str(), c.source.as_str())).collect()
    }

    #[test]
    fn added_dropped_and_renamed_columns() {
        let original = ["id", "a", "b", "c"];
        // ADD d, DROP c, RENAME b TO bb
        let shadow = ["id", "a", "bb", "d"];
        let p = pairs(&original, &shadow, &[r("b", "bb")]);
        assert_eq!(names(&p), vec![("id", "id"), ("a", "a"), ("bb", "b")]);
    }

    #[test]
    fn a_new_column_reusing_a_renamed_name_is_not_filled_from_the_old_one() {
        // RENAME COLUMN a TO b, ADD COLUMN a INT
        let p = pairs(&["id", "a"], &["id", "b", "a"], &[r("a", "b")]);
        assert_eq!(names(&p), vec![("id", "id"), ("b", "a")]);
    }

    #[test]
    fn names_compare_without_case() {
        let p = pairs(&["ID", "Name"], &["id", "name"], &[]);
        assert_eq!(names(&p), vec![("id", "ID"), ("name", "Name")]);
    }
}
