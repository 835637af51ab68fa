//! Spec validation the schema cannot express. Every kind's controller runs
//! its check first and touches nothing in MySQL when it fails.

use std::fmt;

/// Everything wrong with a spec, each entry naming the field and what to fix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecErrors(Vec<String>);

impl SpecErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, problem: impl fmt::Display) {
        self.0.push(format!("{field}: {problem}"));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn messages(&self) -> &[String] {
        &self.0
    }

    /// Ok when nothing was found.
    pub fn into_result(self) -> Result<(), SpecErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// A MySQL identifier (database, table, column): 1-64 characters, no NUL,
    /// no trailing space, and no backtick, so generated SQL can quote it
    /// without escaping surprises.
    pub fn mysql_identifier(&mut self, field: &str, value: &str) {
        self.mysql_identifier_max(field, value, 64);
    }

    /// Like [`Self::mysql_identifier`] with a tighter length bound, for names
    /// that get a prefix or suffix added (shadow and retired tables).
    pub fn mysql_identifier_max(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.add(field, "must not be empty");
        } else if value.chars().count() > max {
            self.add(field, format!("{value:?} is longer than {max} characters"));
        } else if value.contains(['\0', '`']) || value.ends_with(' ') {
            self.add(field, format!("{value:?} contains a NUL, a backtick or a trailing space"));
        }
    }

    /// The name of a Kubernetes object in the same namespace (DNS-1123 subdomain).
    pub fn object_name(&mut self, field: &str, value: &str) {
        if !is_dns1123_subdomain(value) {
            self.add(
                field,
                format!("{value:?} is not a valid object name (lowercase letters, digits, '-' and '.', at most 253 characters)"),
            );
        }
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for SpecErrors {}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Schemas MySQL and MariaDB keep for themselves; never moved or changed.
pub const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

pub fn is_system_schema(name: &str) -> bool {
    SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        let mut e = SpecErrors::new();
        e.mysql_identifier("spec.table", "orders");
        e.mysql_identifier("spec.table", "заказы");
        assert!(e.is_empty());
        e.mysql_identifier("spec.table", "");
        e.mysql_identifier("spec.table", "a`b");
        e.mysql_identifier("spec.table", &"x".repeat(65));
        e.mysql_identifier("spec.table", "trailing ");
        assert_eq!(e.messages().len(), 4);
        assert!(e.to_string().starts_with("spec.table: must not be empty; "));
    }

    #[test]
    fn object_names() {
        assert!(is_dns1123_subdomain("db-1.prod"));
        assert!(!is_dns1123_subdomain("Db"));
        assert!(!is_dns1123_subdomain("-db"));
        assert!(!is_dns1123_subdomain(""));
        assert!(!is_dns1123_subdomain("a..b"));
    }

    #[test]
    fn system_schemas() {
        assert!(is_system_schema("MySQL"));
        assert!(!is_system_schema("shop"));
    }
}
