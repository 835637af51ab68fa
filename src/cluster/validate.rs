//! Checks of a MySQLCluster spec beyond its schema.

use super::api::MySQLClusterSpec;
use crate::validation::SpecErrors;

/// StatefulSet pods get a `controller-revision-hash` label of the set's name
/// plus a hash, which must fit a 63-character label value.
pub const MAX_NAME_LEN: usize = 52;

/// my.cnf options the operator sets itself; a user override would break
/// replication, failover or how the operator reaches the server.
const OWNED_OPTIONS: &[&str] = &[
    "server_id",
    "gtid_mode",
    "enforce_gtid_consistency",
    "gtid_domain_id",
    "gtid_strict_mode",
    "log_bin",
    "log_slave_updates",
    "log_replica_updates",
    "binlog_format",
    "binlog_row_image",
    "read_only",
    "super_read_only",
    "port",
    "bind_address",
    "socket",
    "datadir",
    "pid_file",
    "user",
    "skip_networking",
    "skip_grant_tables",
    "report_host",
    "relay_log",
    "skip_slave_start",
    "skip_replica_start",
];

/// Option-name prefixes the operator owns (semi-sync settings).
const OWNED_PREFIXES: &[&str] = &["rpl_semi_sync_"];

pub fn validate(name: &str, spec: &MySQLClusterSpec) -> Result<(), SpecErrors> {
    let mut e = SpecErrors::new();
    if name.len() > MAX_NAME_LEN {
        e.add(
            "metadata.name",
            format!("must be at most {MAX_NAME_LEN} characters (pod names and labels derive from it)"),
        );
    }
    if !(1..=9).contains(&spec.replicas) {
        e.add("spec.replicas", format!("{} is out of range: use 1 to 9", spec.replicas));
    }
    if let Err(why) = check_image(&spec.image) {
        e.add("spec.image", why);
    }
    if spec.primary < 0 || spec.primary >= spec.replicas.max(1) {
        e.add(
            "spec.primary",
            format!("ordinal {} does not exist: it must be below spec.replicas ({})", spec.primary, spec.replicas),
        );
    }
    for key in spec.config.keys() {
        if is_owned_option(key) {
            e.add(&format!("spec.config.{key}"), "is set by the operator and cannot be overridden");
        } else if key.is_empty()
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            e.add(&format!("spec.config.{key}"), "is not a valid option name");
        }
    }
    for (key, value) in &spec.config {
        if value.contains(['\n', '\r']) {
            e.add(&format!("spec.config.{key}"), "value must be a single line");
        }
    }
    if !is_quantity(&spec.storage.size) {
        e.add("spec.storage.size", format!("{:?} is not a quantity such as 10Gi", spec.storage.size));
    }
    if let Some(class) = &spec.storage.storage_class_name {
        e.object_name("spec.storage.storageClassName", class);
    }
    if spec.failover.delay_seconds < 0 {
        e.add("spec.failover.delaySeconds", "must not be negative");
    }
    let r = &spec.replication;
    if r.semi_sync && spec.replicas > 1 && r.wait_for_replica_count > spec.replicas - 1 {
        e.add(
            "spec.replication.waitForReplicaCount",
            format!(
                "{} acknowledgements can never arrive from {} replicas; use at most {}",
                r.wait_for_replica_count,
                spec.replicas - 1,
                spec.replicas - 1
            ),
        );
    }
    e.into_result()
}

/// Normalizes an option name the way mysqld does: `-` and `_` are the same.
fn is_owned_option(key: &str) -> bool {
    let k = key.trim().to_ascii_lowercase().replace('-', "_");
    // `loose_` only suppresses unknown-option errors; it does not change ownership.
    let k = k.strip_prefix("loose_").unwrap_or(&k);
    OWNED_OPTIONS.contains(&k) || OWNED_PREFIXES.iter().any(|p| k.starts_with(p))
}

/// Accepts MariaDB (10.11+) and MySQL (8.0+) images, including Percona's.
/// The name is the only thing known before a pod runs; the flavor used for SQL
/// is detected from the server itself.
pub fn check_image(image: &str) -> Result<(), String> {
    let (repository, tag) = split_image(image);
    let last = repository.rsplit('/').next().unwrap_or(repository).to_ascii_lowercase();
    let is_mariadb = last.contains("mariadb");
    let is_mysql = last.contains("mysql") || last.contains("percona");
    if image.trim().is_empty() || image.contains(char::is_whitespace) {
        return Err(format!("{image:?} is not an image reference"));
    }
    if !is_mariadb && !is_mysql {
        return Err(format!("{image:?} is not a MySQL or MariaDB image"));
    }
    if let Some(tag) = tag {
        let version: Vec<u32> = tag.split(['.', '-']).take(2).map_while(|p| p.parse().ok()).collect();
        let too_old = match (is_mariadb, version.as_slice()) {
            (true, [major, minor, ..]) => (*major, *minor) < (10, 11),
            (true, [major]) => *major < 10,
            (false, [major, ..]) => *major < 8,
            _ => false,
        };
        if too_old {
            let need = if is_mariadb { "MariaDB 10.11 or later" } else { "MySQL 8.0 or later" };
            return Err(format!("{image:?} is too old: Switchyard needs {need}"));
        }
    }
    Ok(())
}

/// Splits `registry:5000/repo/name:tag@digest` into repository and tag.
fn split_image(image: &str) -> (&str, Option<&str>) {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => (&without_digest[..last_slash + i], Some(&without_digest[last_slash + i + 1..])),
        None => (without_digest, None),
    }
}

fn is_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 13] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", ""];
    SUFFIXES.iter().any(|suffix| {
        s.strip_suffix(suffix).is_some_and(|num| {
            let mut parts = num.splitn(2, '.');
            let int = parts.next().unwrap_or("");
            let frac = parts.next();
            !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
                && num.parse::<f64>().is_ok_and(|v| v > 0.0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MySQLClusterSpec {
        MySQLClusterSpec::default()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate("db", &spec()), Ok(()));
    }

    #[test]
    fn replicas_out_of_range() {
        let mut s = spec();
        s.replicas = 10;
        let err = validate("db", &s).unwrap_err().to_string();
        assert!(err.contains("spec.replicas: 10 is out of range"), "{err}");
    }

    #[test]
    fn primary_must_exist() {
        let mut s = spec();
        s.primary = 3;
        let err = validate("db", &s).unwrap_err().to_string();
        assert!(err.contains("spec.primary: ordinal 3 does not exist"), "{err}");
    }

    #[test]
    fn images() {
        for ok in [
            "mariadb:10.11",
            "mariadb:11.4",
            "docker.io/library/mysql:8.4",
            "mysql:8.0.36",
            "percona/percona-server:8.0",
            "registry:5000/db/mariadb",
            "mariadb@sha256:abc",
        ] {
            assert_eq!(check_image(ok), Ok(()), "{ok}");
        }
        assert!(check_image("nginx:1.25").unwrap_err().contains("not a MySQL or MariaDB image"));
        assert!(check_image("registry:5000/nginx").is_err(), "a registry port is not a tag");
        assert!(check_image("mysql:5.7").unwrap_err().contains("too old"));
        assert!(check_image("mariadb:10.6").unwrap_err().contains("too old"));
        assert!(check_image("").is_err());
    }

    #[test]
    fn owned_config_keys_are_refused() {
        let mut s = spec();
        s.config.insert("server-id".into(), "7".into());
        s.config.insert("loose_rpl_semi_sync_master_enabled".into(), "0".into());
        s.config.insert("max_connections".into(), "500".into());
        let err = validate("db", &s).unwrap_err();
        assert_eq!(err.messages().len(), 2, "{err}");
        assert!(err.to_string().contains("spec.config.server-id: is set by the operator"));
    }

    #[test]
    fn config_values_are_single_lines() {
        let mut s = spec();
        s.config.insert("max_connections".into(), "5\n[client]".into());
        assert!(validate("db", &s).is_err());
    }

    #[test]
    fn quantities() {
        assert!(is_quantity("10Gi"));
        assert!(is_quantity("1.5Ti"));
        assert!(is_quantity("500M"));
        assert!(!is_quantity("ten"));
        assert!(!is_quantity("Gi"));
        assert!(!is_quantity("0"));
        assert!(!is_quantity("1.Gi"));
    }

    #[test]
    fn semi_sync_acks_must_be_possible() {
        let mut s = spec();
        s.replicas = 2;
        s.replication.wait_for_replica_count = 2;
        assert!(validate("db", &s).unwrap_err().to_string().contains("waitForReplicaCount"));
        s.replication.semi_sync = false;
        assert_eq!(validate("db", &s), Ok(()));
    }

    #[test]
    fn long_names_are_refused() {
        assert!(validate(&"a".repeat(53), &spec()).is_err());
    }
}
