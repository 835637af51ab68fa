//! Whether the shadow enforces a unique key the original does not.
//!
//! The shadow is filled with REPLACE, which deletes whatever row collides
//! with the one it writes. That is harmless while every unique key of the
//! shadow is implied by one of the original's (the original never holds two
//! rows that collide). A key the change adds, or redefines more strictly (a
//! column's collation changed, say `utf8mb4_bin` to a case-insensitive one,
//! or a shorter prefix), lets two rows the original holds apart collide in
//! the shadow, and one of them would vanish silently where ALTER TABLE would
//! refuse. Such changes are refused before the copy.

/// One part of a unique key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPart {
    /// '' for an expression (a functional key part).
    pub column: String,
    /// '' for a column without one (numbers, binary strings).
    pub collation: String,
    /// Characters of a prefix; 0 for the whole column.
    pub prefix: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UniqueKey {
    pub name: String,
    pub parts: Vec<KeyPart>,
}

/// Groups key parts, one row per part in key order, into keys.
pub fn group(rows: impl IntoIterator<Item = (String, KeyPart)>) -> Vec<UniqueKey> {
    let mut keys: Vec<UniqueKey> = Vec::new();
    for (name, part) in rows {
        match keys.last_mut() {
            Some(k) if k.name == name => k.parts.push(part),
            _ => keys.push(UniqueKey { name, parts: vec![part] }),
        }
    }
    keys
}

/// Names of the shadow's unique keys that no unique key of the original
/// implies, comparing the original's columns after the clause's renames.
pub fn not_enforced(original: &[UniqueKey], shadow: &[UniqueKey], renames: &[(String, String)]) -> Vec<String> {
    let renamed = |c: &str| {
        renames
            .iter()
            .find(|(old, _)| old.eq_ignore_ascii_case(c))
            .map_or_else(|| c.to_string(), |(_, new)| new.clone())
    };
    shadow.iter().filter(|s| !original.iter().any(|o| implies(o, s, &renamed))).map(|s| s.name.clone()).collect()
}

/// Whether `original` being unique makes `shadow` unique: every part of
/// `original` is in `shadow`, compared the same way and at least as long.
fn implies(original: &UniqueKey, shadow: &UniqueKey, renamed: &impl Fn(&str) -> String) -> bool {
    original.parts.iter().all(|o| {
        // An expression cannot be matched by name: assume it is not implied.
        !o.column.is_empty()
            && shadow.parts.iter().any(|s| {
                s.column.eq_ignore_ascii_case(&renamed(&o.column))
                    && s.collation.eq_ignore_ascii_case(&o.collation)
                    && (s.prefix == 0 || (o.prefix != 0 && s.prefix >= o.prefix))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(column: &str, collation: &str, prefix: u64) -> KeyPart {
        KeyPart { column: column.into(), collation: collation.into(), prefix }
    }

    fn key(name: &str, parts: &[KeyPart]) -> UniqueKey {
        UniqueKey { name: name.into(), parts: parts.to_vec() }
    }

    fn r(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    const BIN: &str = "utf8mb4_bin";
    const CI: &str = "utf8mb4_unicode_ci";

    #[test]
    fn parts_are_grouped_into_their_keys() {
        let rows = vec![
            ("PRIMARY".to_string(), part("tenant", CI, 0)),
            ("PRIMARY".to_string(), part("id", "", 0)),
            ("uk".to_string(), part("email", CI, 40)),
        ];
        let keys = group(rows);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].parts.len(), 2);
        assert_eq!(keys[1], key("uk", &[part("email", CI, 40)]));
    }

    #[test]
    fn new_keys_are_found_and_renames_respected() {
        let original = vec![key("PRIMARY", &[part("id", "", 0)]), key("e", &[part("email", CI, 0)])];
        let shadow = vec![
            key("PRIMARY", &[part("id", "", 0)]),
            key("mail", &[part("mail", CI, 0)]),
            key("wider", &[part("ID", "", 0), part("name", CI, 0)]),
            key("sku", &[part("sku", CI, 0)]),
        ];
        assert_eq!(not_enforced(&original, &shadow, &[r("email", "mail")]), vec!["sku"]);
        assert_eq!(not_enforced(&original, &shadow, &[]), vec!["mail", "sku"]);
    }

    #[test]
    fn a_narrower_key_than_a_composite_one_is_new() {
        // The original enforces (tenant, id) together; the shadow wants id alone.
        let original = vec![key("PRIMARY", &[part("tenant", CI, 0), part("id", "", 0)])];
        let shadow =
            vec![key("PRIMARY", &[part("tenant", CI, 0), part("id", "", 0)]), key("uk_id", &[part("id", "", 0)])];
        assert_eq!(not_enforced(&original, &shadow, &[]), vec!["uk_id"]);
    }

    #[test]
    fn a_collation_change_redefines_the_key() {
        let original = vec![key("uk_login", &[part("login", BIN, 0)])];
        let shadow = vec![key("uk_login", &[part("login", CI, 0)])];
        assert_eq!(not_enforced(&original, &shadow, &[]), vec!["uk_login"]);
        assert!(not_enforced(&original, &original, &[]).is_empty());
    }

    #[test]
    fn only_a_shorter_prefix_redefines_the_key() {
        let original = vec![key("uk", &[part("email", CI, 40)])];
        for (prefix, new) in [(20, true), (40, false), (60, false), (0, false)] {
            let shadow = vec![key("uk", &[part("email", CI, prefix)])];
            assert_eq!(!not_enforced(&original, &shadow, &[]).is_empty(), new, "prefix {prefix}");
        }
        // A prefix is stricter than the whole column it replaces.
        let whole = vec![key("uk", &[part("email", CI, 0)])];
        assert!(!not_enforced(&whole, &original, &[]).is_empty());
    }

    #[test]
    fn an_expression_part_is_never_taken_as_enforced() {
        let original = vec![key("f", &[part("", "", 0)])];
        assert_eq!(not_enforced(&original, &original, &[]), vec!["f"]);
    }
}
