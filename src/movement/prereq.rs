//! Settings without which a movement could lose changes, checked before any
//! work starts so the error names the setting rather than a symptom.

use std::collections::HashMap;
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::error::{At, MovementError, Result};
use crate::mysql::Flavor;

const VARIABLES: &[&str] = &[
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "log_bin_compress",
    "binlog_expire_logs_seconds",
    "expire_logs_days",
    "binlog_row_value_options",
];

/// Problems with a source's settings, in the order a DBA would fix them.
pub fn check(
    server: &str,
    flavor: Flavor,
    vars: &HashMap<String, String>,
    min_retention: Duration,
) -> Vec<MovementError> {
    let get = |k: &str| vars.get(k).map(|v| v.trim().to_ascii_uppercase()).unwrap_or_default();
    let problem = |setting: &str, actual: String, required: &str| MovementError::Prerequisite {
        server: server.to_string(),
        setting: setting.to_string(),
        actual: if actual.is_empty() { "unset".into() } else { actual },
        required: required.to_string(),
    };
    let mut problems = Vec::new();
    if !matches!(get("log_bin").as_str(), "ON" | "1") {
        problems.push(problem("log_bin", get("log_bin"), "ON (changes are read from the binary log)"));
    }
    if get("binlog_format") != "ROW" {
        problems.push(problem("binlog_format", get("binlog_format"), "ROW"));
    }
    if get("binlog_row_image") != "FULL" {
        problems.push(problem(
            "binlog_row_image",
            get("binlog_row_image"),
            "FULL (rows are applied from their images)",
        ));
    }
    if flavor.is_mariadb() && matches!(get("log_bin_compress").as_str(), "ON" | "1") {
        problems.push(problem(
            "log_bin_compress",
            get("log_bin_compress"),
            "OFF (compressed row events cannot be decoded)",
        ));
    }
    if get("binlog_row_value_options").contains("PARTIAL_JSON") {
        problems.push(problem(
            "binlog_row_value_options",
            get("binlog_row_value_options"),
            "empty (partial JSON updates carry no full image)",
        ));
    }
    // 0 means "never purge" for both variables; otherwise the longer one wins.
    let seconds = get("binlog_expire_logs_seconds").parse::<u64>().unwrap_or(0);
    let days = get("expire_logs_days").parse::<f64>().unwrap_or(0.0);
    let retention = seconds.max((days * 86400.0) as u64);
    if retention != 0 && retention < min_retention.as_secs() {
        problems.push(problem(
            "binlog_expire_logs_seconds",
            retention.to_string(),
            &format!("0 or at least {} (binary logs must outlive the copy)", min_retention.as_secs()),
        ));
    }
    problems
}

/// Reads the variables and checks them; the first problem is the error.
pub async fn verify(conn: &mut Conn, server: &str, flavor: Flavor, min_retention: Duration) -> Result<()> {
    let list = VARIABLES.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(",");
    let rows: Vec<(String, String)> =
        conn.query(format!("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({list})")).await.at(server)?;
    let vars: HashMap<String, String> = rows.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    match check(server, flavor, &vars, min_retention).into_iter().next() {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: Flavor = Flavor::MariaDb { major: 10, minor: 11 };
    const DAY: Duration = Duration::from_secs(86400);

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn good() -> HashMap<String, String> {
        vars(&[
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("log_bin_compress", "OFF"),
            ("binlog_expire_logs_seconds", "0"),
            ("expire_logs_days", "0.000000"),
        ])
    }

    #[test]
    fn a_well_configured_source_passes() {
        assert!(check("src", MARIADB, &good(), DAY).is_empty());
    }

    #[test]
    fn each_problem_names_its_setting() {
        let mut v = good();
        v.insert("log_bin".into(), "OFF".into());
        v.insert("binlog_format".into(), "MIXED".into());
        v.insert("binlog_row_image".into(), "MINIMAL".into());
        v.insert("log_bin_compress".into(), "ON".into());
        let msgs: Vec<String> = check("src", MARIADB, &v, DAY).iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs[0].starts_with("src: log_bin is OFF; it must be ON"), "{}", msgs[0]);
        assert!(msgs[1].contains("binlog_format is MIXED; it must be ROW"));
        assert!(msgs[2].contains("binlog_row_image is MINIMAL"));
        assert!(msgs[3].contains("log_bin_compress is ON"));
    }

    #[test]
    fn retention_must_outlive_the_copy() {
        let mut v = good();
        v.insert("binlog_expire_logs_seconds".into(), "3600".into());
        let p = check("src", MARIADB, &v, DAY);
        assert_eq!(p.len(), 1);
        assert!(p[0].to_string().contains("at least 86400"));
        v.insert("expire_logs_days".into(), "7.000000".into());
        assert!(check("src", MARIADB, &v, DAY).is_empty(), "the longer setting wins");
    }

    #[test]
    fn mysql_partial_json_is_refused() {
        let mut v = good();
        v.remove("log_bin_compress");
        v.insert("binlog_row_value_options".into(), "PARTIAL_JSON".into());
        let p = check("src", Flavor::MySql { major: 8, minor: 0 }, &v, DAY);
        assert_eq!(p.len(), 1);
        assert!(p[0].to_string().contains("binlog_row_value_options"));
    }
}
