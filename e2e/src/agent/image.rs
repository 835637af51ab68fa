//! Which container images this node can run. There is no container runtime:
//! a MariaDB image runs as the host's mariadbd, a MySQL or Percona image as
//! the MySQL of the sid root (see `installation.rs`); anything else is refused
//! the way a kubelet refuses an image it cannot pull.

use super::installation::Family;

/// Repository words that mark a MySQL-family server image.
const SERVER_WORDS: &[&str] = &["mariadb", "mysql", "percona"];

/// Tools that share the family name but are not a server; running mariadbd in
/// their place would make a sidecar look healthy while doing nothing it should.
const TOOL_WORDS: &[&str] = &[
    "exporter",
    "xtrabackup",
    "router",
    "operator",
    "toolkit",
    "backup",
    "proxysql",
    "orchestrator",
    "pmm",
    "haproxy",
    "shell",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSupport {
    /// Runs as a real server process of this family.
    Server(Family),
    /// Cannot run here; the message says why, for the container status.
    Unsupported(String),
}

/// The repository path of an image reference: no registry host, tag or digest.
/// `registry.example:5000/library/mariadb:10.11@sha256:...` → `library/mariadb`.
pub fn repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let mut parts: Vec<&str> = without_digest.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            parts.remove(0);
        }
    }
    let path_start = without_digest.len() - parts.join("/").len();
    let path = &without_digest[path_start..];
    // A tag is a colon after the last slash (a registry port was removed above).
    let last_slash = path.rfind('/').map(|i| i + 1).unwrap_or(0);
    match path[last_slash..].find(':') {
        Some(colon) => &path[..last_slash + colon],
        None => path,
    }
}

pub fn classify(image: &str) -> ImageSupport {
    let repo = repository(image).to_ascii_lowercase();
    if repo.is_empty() {
        return ImageSupport::Unsupported("container has no image".to_string());
    }
    let is_family = SERVER_WORDS.iter().any(|w| repo.contains(w));
    let name = repo.rsplit('/').next().unwrap_or(&repo);
    let is_tool = TOOL_WORDS.iter().any(|w| name.contains(w));
    if is_family && !is_tool {
        return ImageSupport::Server(if name.contains("mariadb") { Family::MariaDb } else { Family::MySql });
    }
    let why = if is_family {
        "it is a MySQL tool, not a server"
    } else {
        "it is not a MySQL, MariaDB or Percona server image"
    };
    ImageSupport::Unsupported(format!(
        "image \"{image}\" cannot run on this node: {why}; the Switchyard node agent runs only \
         MySQL-family server images, as real mariadbd and mysqld processes (there is no container runtime)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_strips_registry_tag_and_digest() {
        assert_eq!(repository("mariadb:10.11"), "mariadb");
        assert_eq!(repository("mariadb"), "mariadb");
        assert_eq!(repository("docker.io/library/mysql:8.0"), "library/mysql");
        assert_eq!(repository("registry.local:5000/team/percona-server:8.0@sha256:abc"), "team/percona-server");
        assert_eq!(repository("localhost/mariadb"), "mariadb");
        assert_eq!(repository("bitnami/mysql@sha256:0123"), "bitnami/mysql");
    }

    #[test]
    fn servers_are_runnable() {
        for (image, family) in [
            ("mariadb:10.11", Family::MariaDb),
            ("mysql:8.0", Family::MySql),
            ("percona/percona-server:8.0", Family::MySql),
            ("quay.io/bitnami/mariadb-galera:11", Family::MariaDb),
            ("docker.io/library/mysql", Family::MySql),
            ("mysql:8.4", Family::MySql),
        ] {
            assert_eq!(classify(image), ImageSupport::Server(family), "{image}");
        }
    }

    #[test]
    fn other_images_and_mysql_tools_are_refused() {
        for image in [
            "nginx:1.25",
            "busybox",
            "prom/mysqld-exporter:v0.15.0",
            "percona/percona-xtrabackup:8.0",
            "mysql/mysql-router:8.0",
            "",
        ] {
            assert!(matches!(classify(image), ImageSupport::Unsupported(_)), "{image}");
        }
        let ImageSupport::Unsupported(message) = classify("nginx:1.25") else { unreachable!() };
        assert!(message.contains("nginx:1.25"));
    }
}
