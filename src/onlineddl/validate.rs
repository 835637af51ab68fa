//! Checks of an OnlineDDL spec beyond its schema. They are lexical: the
//! server is the final judge of the ALTER clause, and that check happens on
//! the shadow table, never on the original.

use super::api::OnlineDDLSpec;
use crate::validation::SpecErrors;

/// `_<table>_old_<unix-seconds>` must still fit MySQL's 64-character limit.
pub const MAX_TABLE_LEN: usize = 64 - "__old_".len() - 10;

pub fn validate(spec: &OnlineDDLSpec) -> Result<(), SpecErrors> {
    let mut e = SpecErrors::new();
    e.object_name("spec.cluster", &spec.cluster);
    e.mysql_identifier("spec.database", &spec.database);
    if crate::validation::is_system_schema(&spec.database) {
        e.add("spec.database", format!("{:?} is a system schema", spec.database));
    }
    e.mysql_identifier_max("spec.table", &spec.table, MAX_TABLE_LEN);
    if let Err(why) = check_alter(&spec.alter) {
        e.add("spec.alter", why);
    }
    e.into_result()
}

/// Rejects what can never be a single ALTER TABLE clause: empty text, a
/// repeated `ALTER TABLE t` prefix, several statements, or a rename (which
/// would make the cut-over swap the wrong name).
pub fn check_alter(alter: &str) -> Result<(), String> {
    let text = alter.trim();
    if text.is_empty() {
        return Err("must not be empty; give the clause, e.g. ADD COLUMN note VARCHAR(64) NULL".into());
    }
    let words = unquoted_words(text).map_err(|e| format!("{e} in {text:?}"))?;
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    if upper.first().map(String::as_str) == Some("ALTER") {
        return Err("give only the clause, without the leading ALTER TABLE <table>".into());
    }
    if upper.iter().any(|w| w == ";") {
        return Err("must be a single clause: ';' is not allowed".into());
    }
    let renames_table = upper.windows(2).any(|w| w[0] == "RENAME" && (w[1] == "TO" || w[1] == "AS"))
        || upper.first().map(String::as_str) == Some("RENAME")
            && upper.get(1).is_none_or(|w| w != "COLUMN" && w != "INDEX" && w != "KEY");
    if renames_table {
        return Err("renaming the table is not an online schema change; use RENAME TABLE directly".into());
    }
    Ok(())
}

/// Splits into words and punctuation outside quotes and comments, so that
/// keywords inside string literals or identifiers do not count. A string
/// literal becomes `<quoted>`; a quoted identifier keeps its name, in
/// backquotes.
pub(crate) fn unquoted_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let flush = |cur: &mut String, words: &mut Vec<String>| {
        if !cur.is_empty() {
            words.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                flush(&mut cur, &mut words);
                let mut closed = false;
                let mut ident = String::new();
                while let Some(d) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        if chars.peek() == Some(&c) {
                            chars.next();
                            ident.push(c);
                        } else {
                            closed = true;
                            break;
                        }
                    } else {
                        ident.push(d);
                    }
                }
                if !closed {
                    return Err(format!("unterminated {c} quote"));
                }
                words.push(if c == '`' { format!("`{ident}`") } else { "<quoted>".into() });
            }
            '-' if chars.peek() == Some(&'-') => return Err("SQL comments are not allowed".into()),
            '#' => return Err("SQL comments are not allowed".into()),
            '/' if chars.peek() == Some(&'*') => return Err("SQL comments are not allowed".into()),
            c if c.is_whitespace() => flush(&mut cur, &mut words),
            ';' | ',' | '(' | ')' => {
                flush(&mut cur, &mut words);
                words.push(c.to_string());
            }
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut words);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onlineddl::api::Strategy;

    fn spec(alter: &str) -> OnlineDDLSpec {
        OnlineDDLSpec {
            cluster: "db".into(),
            database: "shop".into(),
            table: "orders".into(),
            alter: alter.into(),
            strategy: Strategy::Auto,
            postpone_completion: false,
            cutover: Default::default(),
            throttle: Default::default(),
            retain_old_table_seconds: 86_400,
            cancel: false,
        }
    }

    #[test]
    fn good_clauses() {
        for a in [
            "ADD COLUMN note VARCHAR(64) NULL",
            "ADD COLUMN note VARCHAR(64) DEFAULT 'a;b', ADD INDEX (note)",
            "RENAME COLUMN a TO b",
            "MODIFY c TEXT COMMENT 'rename to x'",
            "ENGINE=InnoDB",
        ] {
            assert_eq!(validate(&spec(a)), Ok(()), "{a}");
        }
    }

    #[test]
    fn bad_clauses() {
        for (a, why) in [
            ("", "must not be empty"),
            ("ALTER TABLE orders ADD c INT", "without the leading ALTER TABLE"),
            ("ADD c INT; DROP TABLE orders", "single clause"),
            ("RENAME TO orders2", "renaming the table"),
            ("ADD c INT, RENAME AS x", "renaming the table"),
            ("ADD c VARCHAR(3) DEFAULT 'x", "unterminated"),
            ("ADD c INT -- comment", "comments"),
        ] {
            let err = validate(&spec(a)).unwrap_err().to_string();
            assert!(err.contains(why), "{a}: {err}");
        }
    }

    #[test]
    fn table_name_must_leave_room_for_the_old_table_name() {
        let mut s = spec("ADD c INT");
        s.table = "t".repeat(MAX_TABLE_LEN + 1);
        assert!(validate(&s).is_err());
        s.table = "t".repeat(MAX_TABLE_LEN);
        assert_eq!(validate(&s), Ok(()));
        assert_eq!(format!("_{}_old_{}", s.table, 1_900_000_000).len(), 64);
    }

    #[test]
    fn system_schemas_are_refused() {
        let mut s = spec("ADD c INT");
        s.database = "mysql".into();
        assert!(validate(&s).is_err());
    }
}
