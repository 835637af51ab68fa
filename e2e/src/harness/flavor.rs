//! Which server the e2e clusters run. `SWITCHYARD_E2E_IMAGE` picks the image
//! of every MySQLCluster the suites create: `mariadb:10.11` (the host's
//! MariaDB) unless set, `mysql:8.4` for Oracle MySQL (9.7 from the sid root
//! stands in for it; see docs/local-environment.md). `hack/e2e.sh` runs the
//! chosen cases a second time with the MySQL image.

pub const IMAGE_VAR: &str = "SWITCHYARD_E2E_IMAGE";
pub const DEFAULT_IMAGE: &str = "mariadb:10.11";

pub fn server_image() -> String {
    std::env::var(IMAGE_VAR).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| DEFAULT_IMAGE.to_string())
}

/// Whether the clusters run Oracle MySQL (a `mysql` or `percona` image).
pub fn is_mysql() -> bool {
    let image = server_image().to_ascii_lowercase();
    !image.contains("mariadb")
}
