//! Container paths → host paths. Processes run on the host, so every path a
//! pod mentions (args, option files, probe commands, init scripts) must be
//! rewritten to where its volume really lives.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct MountTable {
    /// (container path without trailing slash, host path), longest first so
    /// nested mounts win over their parents.
    entries: Vec<(String, PathBuf)>,
}

fn normalize(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() }
}

/// Characters that can sit right before a path in a command line or an option
/// file: `--opt=/path`, `"/path"`, `a:/path`, `(/path`.
fn starts_token(prev: Option<char>) -> bool {
    match prev {
        None => true,
        Some(c) => c.is_whitespace() || matches!(c, '=' | '"' | '\'' | ':' | ',' | '(' | '`'),
    }
}

/// A container path match must end at a path boundary: `/var/lib/mysql` must
/// not match inside `/var/lib/mysql-files`.
fn ends_path(next: Option<char>) -> bool {
    match next {
        None => true,
        Some(c) => c == '/' || c.is_whitespace() || matches!(c, '"' | '\'' | ':' | ',' | ')' | ';' | '`'),
    }
}

impl MountTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, container_path: &str, host_path: impl Into<PathBuf>) {
        let container = normalize(container_path);
        self.entries.retain(|(c, _)| *c != container);
        self.entries.push((container, host_path.into()));
        self.entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The host directory or file mounted exactly at `container_path`.
    pub fn mounted_at(&self, container_path: &str) -> Option<&Path> {
        let wanted = normalize(container_path);
        self.entries.iter().find(|(c, _)| *c == wanted).map(|(_, h)| h.as_path())
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.entries.iter().map(|(c, h)| (c.as_str(), h.as_path()))
    }

    /// The host path of a container path, if some mount covers it.
    pub fn host_path(&self, container_path: &str) -> Option<PathBuf> {
        for (container, host) in &self.entries {
            if container_path == container {
                return Some(host.clone());
            }
            if let Some(rest) = container_path.strip_prefix(container.as_str())
                && let Some(rest) = rest.strip_prefix('/')
            {
                return Some(host.join(rest));
            }
        }
        None
    }

    /// Like `host_path`, but keeps unmapped paths as they are.
    pub fn translate_path(&self, container_path: &str) -> String {
        self.host_path(container_path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| container_path.to_string())
    }

    /// Rewrite every mounted container path that appears in free text (an
    /// argument, an option file, a shell snippet). One left-to-right pass, so a
    /// host path that was just written is never rewritten again.
    pub fn translate_text(&self, text: &str) -> String {
        if self.entries.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut prev: Option<char> = None;
        let mut i = 0;
        'scan: while i < text.len() {
            let rest = &text[i..];
            if rest.starts_with('/') && starts_token(prev) {
                for (container, host) in &self.entries {
                    if container == "/" {
                        continue;
                    }
                    if rest.starts_with(container.as_str()) && ends_path(rest[container.len()..].chars().next()) {
                        out.push_str(&host.to_string_lossy());
                        i += container.len();
                        prev = container.chars().last();
                        continue 'scan;
                    }
                }
            }
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            prev = Some(c);
            i += c.len_utf8();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> MountTable {
        let mut t = MountTable::new();
        t.add("/var/lib/mysql", "/state/volumes/ns/data-db-0");
        t.add("/etc/mysql/conf.d/", "/state/pods/ns/db-0/volumes/config");
        t.add("/etc/mysql/conf.d/extra.cnf", "/state/pods/ns/db-0/volumes/other/extra.cnf");
        t
    }

    #[test]
    fn host_path_uses_the_longest_mount() {
        let t = table();
        assert_eq!(
            t.host_path("/var/lib/mysql/binlog/mysql-bin"),
            Some(PathBuf::from("/state/volumes/ns/data-db-0/binlog/mysql-bin"))
        );
        assert_eq!(
            t.host_path("/etc/mysql/conf.d/extra.cnf"),
            Some(PathBuf::from("/state/pods/ns/db-0/volumes/other/extra.cnf"))
        );
        assert_eq!(
            t.host_path("/etc/mysql/conf.d/my.cnf"),
            Some(PathBuf::from("/state/pods/ns/db-0/volumes/config/my.cnf"))
        );
        assert_eq!(t.host_path("/var/lib/mysql-files/x"), None);
        assert_eq!(t.translate_path("/usr/share/zoneinfo"), "/usr/share/zoneinfo");
        assert_eq!(t.mounted_at("/etc/mysql/conf.d"), Some(Path::new("/state/pods/ns/db-0/volumes/config")));
    }

    #[test]
    fn translate_text_rewrites_arguments_and_option_files() {
        let t = table();
        assert_eq!(
            t.translate_text("--defaults-extra-file=/etc/mysql/conf.d/my.cnf"),
            "--defaults-extra-file=/state/pods/ns/db-0/volumes/config/my.cnf"
        );
        assert_eq!(
            t.translate_text("log-bin = /var/lib/mysql/mysql-bin\ndatadir=/var/lib/mysql\n"),
            "log-bin = /state/volumes/ns/data-db-0/mysql-bin\ndatadir=/state/volumes/ns/data-db-0\n"
        );
        assert_eq!(
            t.translate_text("cat '/var/lib/mysql/x' \"/var/lib/mysql\""),
            "cat '/state/volumes/ns/data-db-0/x' \"/state/volumes/ns/data-db-0\""
        );
    }

    #[test]
    fn translate_text_leaves_lookalikes_alone() {
        let t = table();
        for text in ["/var/lib/mysql-files/x", "/opt/var/lib/mysql", "relative/var/lib/mysql", "no paths here"] {
            assert_eq!(t.translate_text(text), text);
        }
    }

    #[test]
    fn translate_text_never_rewrites_its_own_output() {
        let mut t = MountTable::new();
        t.add("/data", "/data/volumes/data");
        assert_eq!(t.translate_text("--x=/data/a"), "--x=/data/volumes/data/a");
    }
}
