//! What mariadbd accepts. Pods written for MySQL pass options MariaDB does not
//! know (`--gtid-mode=ON`, `default-authentication-plugin`), and mariadbd
//! refuses to start on an unknown option. Asking the installed binary for its
//! option list lets the agent turn exactly those into `loose-` options, which
//! mariadbd reports and ignores, instead of guessing.

use std::collections::HashSet;

#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Normalized option names; empty means "unknown, accept everything".
    known: HashSet<String>,
}

/// `--Skip_Name-Resolve=1` → `skip-name-resolve`; prefixes that only modify an
/// option (`loose-`, `skip-`, ...) are removed so the base name can be checked.
pub fn base_name(option: &str) -> String {
    let mut name = option
        .trim_start_matches('-')
        .split('=')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .replace('_', "-");
    for prefix in ["loose-", "skip-", "enable-", "disable-", "maximum-"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest.to_string();
        }
    }
    name
}

impl ServerOptions {
    /// Parse `mariadbd --verbose --help`: option lines start with two spaces
    /// and `--name`.
    pub fn from_help(help: &str) -> Self {
        let known = help
            .lines()
            .filter_map(|l| l.strip_prefix("  --"))
            .filter_map(|l| l.split(|c: char| c == '=' || c == '[' || c.is_whitespace()).next())
            .filter(|name| !name.is_empty())
            .map(base_name)
            .collect();
        Self { known }
    }

    /// Ask the server program (`server`: the command that runs it, without
    /// arguments) for its options.
    pub fn detect(mut server: std::process::Command) -> Self {
        match server.args(["--no-defaults", "--verbose", "--help"]).output() {
            Ok(out) if out.status.success() => {
                let parsed = Self::from_help(&String::from_utf8_lossy(&out.stdout));
                if parsed.known.len() < 100 {
                    tracing::warn!("the server's --help listed few options; passing all options through");
                    return Self::default();
                }
                parsed
            }
            other => {
                tracing::warn!(?other, "could not list the server's options; passing all options through");
                Self::default()
            }
        }
    }

    /// Whether mariadbd would start with this option (name or `--name=value`).
    pub fn accepts(&self, option: &str) -> bool {
        if self.known.is_empty() {
            return true;
        }
        let raw = option.trim_start_matches('-').to_ascii_lowercase().replace('_', "-");
        if raw.starts_with("loose-") {
            return true;
        }
        let name = base_name(option);
        // Plugin options of plugins that are not loaded are still valid when
        // the plugin is loaded later; mariadbd names them after the plugin.
        self.known.contains(&name) || name.starts_with("plugin-")
    }

    /// `--gtid-mode=ON` → `--loose-gtid-mode=ON`.
    pub fn loosen(option: &str) -> String {
        let bare = option.trim_start_matches('-');
        let dashes = if option.starts_with("--") { "--" } else { "" };
        format!("{dashes}loose-{bare}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "\
mariadbd  Ver 10.11
  --allow-suspicious-udfs 
  --binlog-format=name 
  --log-bin[=name]    Log update queries in binary format.
  --server-id=#       Uniquely identifies the server instance
  --skip-name-resolve Only use IP numbers
  --max-connections=# The number of simultaneous clients allowed
";

    fn options() -> ServerOptions {
        let mut o = ServerOptions::from_help(HELP);
        // from_help refuses tiny lists only in detect(); fine for tests.
        o.known.insert("innodb-buffer-pool-size".into());
        o
    }

    #[test]
    fn parses_help_and_normalizes() {
        let o = options();
        assert!(o.accepts("--server-id=2"));
        assert!(o.accepts("--server_id=2"));
        assert!(o.accepts("--log-bin"));
        assert!(o.accepts("--skip-log-bin"));
        assert!(o.accepts("--name-resolve"));
        assert!(o.accepts("max_connections"));
        assert!(o.accepts("innodb_buffer_pool_size = 128M"));
        assert!(!o.accepts("--gtid-mode=ON"));
        assert!(!o.accepts("default_authentication_plugin=mysql_native_password"));
        assert!(o.accepts("--loose-gtid-mode=ON"));
    }

    #[test]
    fn the_installed_server_knows_its_options() {
        let binary = std::path::Path::new("/usr/sbin/mariadbd");
        if !binary.exists() {
            eprintln!("no {}; skipped", binary.display());
            return;
        }
        let o = ServerOptions::detect(std::process::Command::new(binary));
        assert!(o.known.len() > 300, "only {} options", o.known.len());
        assert!(o.accepts("--server-id=3"));
        assert!(o.accepts("innodb_buffer_pool_size"));
        assert!(o.accepts("--skip-log-bin"));
        assert!(!o.accepts("--gtid-mode=ON"));
    }

    #[test]
    fn empty_list_accepts_everything() {
        assert!(ServerOptions::default().accepts("--anything"));
    }

    #[test]
    fn loosen_keeps_the_value() {
        assert_eq!(ServerOptions::loosen("--gtid-mode=ON"), "--loose-gtid-mode=ON");
        assert_eq!(ServerOptions::loosen("enforce_gtid_consistency"), "loose-enforce_gtid_consistency");
    }
}
