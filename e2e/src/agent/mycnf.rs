//! The server's command line and option files. The pod's own options are
//! honoured (paths translated, MySQL-only options loosened), and the agent's
//! options are appended last so they always win: the datadir, socket, pid file
//! and address belong to the node, not to the pod spec.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::installation::Family;
use super::mounts::MountTable;
use super::options::ServerOptions;

/// Where the official images read option files from, in their order.
const CONFIG_FILES: &[&str] = &["/etc/my.cnf", "/etc/mysql/my.cnf", "/etc/mysql/mariadb.cnf"];
const CONFIG_DIRS: &[&str] = &["/etc/mysql/conf.d", "/etc/mysql/mariadb.conf.d", "/etc/mysql/mysql.conf.d"];

/// Options the agent sets itself; a pod's value would break addressing or
/// make two pods fight over one file.
const OWNED_OPTIONS: &[&str] =
    &["bind-address", "port", "socket", "pid-file", "user", "networking", "defaults-group-suffix"];

const SERVER_NAMES: &[&str] = &["mysqld", "mariadbd"];
const ENTRYPOINT_NAMES: &[&str] = &["docker-entrypoint.sh", "docker-entrypoint", "entrypoint.sh"];

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// The pod's server options after translation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerCommand {
    /// Options to pass to mariadbd after `--defaults-file`.
    pub args: Vec<String>,
    /// Container paths of `--defaults-file` / `--defaults-extra-file`: they
    /// must come first on a command line, so they are included from my.cnf.
    pub option_files: Vec<String>,
    /// Container path of `--datadir`, if the pod chose one.
    pub datadir: Option<String>,
    /// Every change made, for the log.
    pub notes: Vec<String>,
}

/// Reduce command + args (Kubernetes' ENTRYPOINT/CMD overrides) to mariadbd's
/// options, following what the official images' docker-entrypoint.sh does.
/// Err carries the message for a command this node cannot run.
fn server_options_of(command: &[String], args: &[String]) -> Result<Vec<String>, String> {
    let entrypoint = |words: &[String]| -> Result<Vec<String>, String> {
        match words.first() {
            None => Ok(Vec::new()),
            Some(w) if w.starts_with('-') => Ok(words.to_vec()),
            Some(w) if SERVER_NAMES.contains(&basename(w)) => Ok(words[1..].to_vec()),
            Some(w) => Err(format!("command \"{w}\" is not a MySQL server; this node runs only mysqld/mariadbd")),
        }
    };
    match command.first() {
        None => entrypoint(args),
        Some(c) if ENTRYPOINT_NAMES.contains(&basename(c)) => {
            let words: Vec<String> = command[1..].iter().chain(args).cloned().collect();
            entrypoint(&words)
        }
        Some(c) if SERVER_NAMES.contains(&basename(c)) => Ok(command[1..].iter().chain(args).cloned().collect()),
        Some(c) => Err(format!("command \"{c}\" is not a MySQL server; this node runs only mysqld/mariadbd")),
    }
}

pub fn server_command(
    command: &[String],
    args: &[String],
    mounts: &MountTable,
    options: &ServerOptions,
) -> Result<ServerCommand, String> {
    let words = server_options_of(command, args)?;
    let mut out = ServerCommand::default();
    let mut words = words.into_iter().peekable();
    while let Some(word) = words.next() {
        if !word.starts_with("--") {
            out.args.push(mounts.translate_text(&word));
            continue;
        }
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (word.clone(), None),
        };
        let base = super::options::base_name(&name);
        // Options that take a path, given as a separate word.
        let mut value_of =
            |value: Option<String>| value.or_else(|| words.next_if(|w| !w.starts_with("--")).map(|w| w.to_string()));
        match base.as_str() {
            "defaults-file" | "defaults-extra-file" => match value_of(value) {
                Some(path) => {
                    out.notes.push(format!("{word}: included from my.cnf"));
                    out.option_files.push(path);
                }
                None => out.notes.push(format!("dropped {word}: no file given")),
            },
            "datadir" => match value_of(value) {
                Some(path) => out.datadir = Some(path),
                None => out.notes.push(format!("dropped {word}: no directory given")),
            },
            b if OWNED_OPTIONS.contains(&b) => {
                out.notes.push(format!("dropped {word}: the node agent sets this option"));
            }
            _ if !options.accepts(&name) => {
                let loose = ServerOptions::loosen(&mounts.translate_text(&word));
                out.notes.push(format!("mariadbd does not know {name}; passing it as {loose} (ignored)"));
                out.args.push(loose);
            }
            _ => out.args.push(mounts.translate_text(&word)),
        }
    }
    Ok(out)
}

/// Option-file sections that mariadbd reads.
fn is_server_section(section: &str) -> bool {
    let s = section.to_ascii_lowercase();
    matches!(s.as_str(), "mysqld" | "server" | "mariadb" | "mariadbd" | "client-server")
        || s.starts_with("mysqld-")
        || s.starts_with("mariadb-")
        || s.starts_with("mariadbd-")
}

/// Rewrite one of the pod's option files for the host: mounted paths
/// translated, options mariadbd does not know loosened, and includes of paths
/// the pod does not mount commented out (they would read the host's files).
pub fn rewrite_option_file(text: &str, mounts: &MountTable, options: &ServerOptions) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len() + 64);
    let mut notes = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.split(']').next()) {
            section = name.trim().to_string();
            out.push_str(line);
        } else if let Some(directive) = trimmed
            .strip_prefix("!includedir")
            .map(|p| ("!includedir", p))
            .or_else(|| trimmed.strip_prefix("!include").map(|p| ("!include", p)))
        {
            let (keyword, path) = (directive.0, directive.1.trim());
            match mounts.host_path(path) {
                Some(host) => out.push_str(&format!("{keyword} {}", host.display())),
                None => {
                    notes.push(format!("{trimmed}: not mounted in the pod, skipped"));
                    out.push_str(&format!("# {trimmed}  (not mounted in the pod)"));
                }
            }
        } else if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            out.push_str(line);
        } else if is_server_section(&section) {
            let translated = mounts.translate_text(line);
            let key = trimmed.split('=').next().unwrap_or_default().trim();
            if options.accepts(key) {
                out.push_str(&translated);
            } else {
                notes.push(format!("[{section}] {key}: unknown to mariadbd, loosened (ignored)"));
                out.push_str(&ServerOptions::loosen(translated.trim_start()));
            }
        } else {
            out.push_str(&mounts.translate_text(line));
        }
        out.push('\n');
    }
    (out, notes)
}

/// Host paths of the pod's option files, in the order the image reads them.
pub fn option_file_sources(mounts: &MountTable, from_args: &[String]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !files.contains(&p) {
            files.push(p);
        }
    };
    for f in CONFIG_FILES {
        if let Some(host) = mounts.mounted_at(f) {
            push(host.to_path_buf());
        }
    }
    for dir in CONFIG_DIRS {
        let mut found: Vec<PathBuf> = Vec::new();
        if let Some(host) = mounts.mounted_at(dir)
            && let Ok(entries) = std::fs::read_dir(host)
        {
            found.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "cnf") && p.is_file()),
            );
        }
        // Single files mounted into the directory (subPath mounts).
        for (container, host) in mounts.entries() {
            if Path::new(container).parent() == Some(Path::new(dir)) && container.ends_with(".cnf") {
                found.push(host.to_path_buf());
            }
        }
        found.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
        found.into_iter().for_each(&mut push);
    }
    for f in from_args {
        push(PathBuf::from(mounts.translate_path(f)));
    }
    files
}

/// Settings the agent owns for one server.
#[derive(Debug, Clone)]
pub struct ServerLayout {
    pub pod: String,
    pub datadir: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub tmpdir: PathBuf,
    pub bind: Ipv4Addr,
    pub port: u16,
    pub family: Family,
}

/// my.cnf: image-like defaults, then the pod's files, then the agent's own
/// settings, which therefore override the pod's. The [client] section lets
/// probe commands and init scripts reach this pod through MYSQL_HOME.
pub fn render_my_cnf(layout: &ServerLayout, includes: &[PathBuf]) -> String {
    let mut cnf = format!(
        "# Generated by the Switchyard node agent for pod {pod}; rewritten on every start.\n\
         [mysqld]\n\
         # As in the official images: no DNS lookups for client hosts.\n\
         skip-name-resolve\n\
         host-cache-size=0\n",
        pod = layout.pod
    );
    if layout.family == Family::MySql {
        cnf.push_str(
            "# MySQL: no X Protocol listener (it would take port 33060 on every address,\n\
             # once per pod), and no secure_file_priv directory, which the sid root lacks.\n\
             mysqlx=OFF\n\
             secure-file-priv=\n",
        );
    }
    for include in includes {
        cnf.push_str(&format!("!include {}\n", include.display()));
    }
    cnf.push_str(&format!(
        "\n[mysqld]\n\
         user=root\n\
         datadir={datadir}\n\
         socket={socket}\n\
         pid-file={pid}\n\
         tmpdir={tmp}\n\
         bind-address={bind}\n\
         port={port}\n\
         \n[client]\n\
         socket={socket}\n",
        datadir = layout.datadir.display(),
        socket = layout.socket.display(),
        pid = layout.pid_file.display(),
        tmp = layout.tmpdir.display(),
        bind = layout.bind,
        port = layout.port,
    ));
    cnf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn mounts() -> MountTable {
        let mut m = MountTable::new();
        m.add("/var/lib/mysql", "/st/volumes/ns/data-db-0");
        m.add("/etc/mysql/conf.d", "/st/pods/ns/db-0/volumes/config");
        m
    }

    fn options() -> ServerOptions {
        ServerOptions::from_help("  --server-id=#\n  --log-bin[=name]\n  --max-connections=#\n  --datadir=name\n")
    }

    #[test]
    fn official_image_command_forms_reduce_to_server_options() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &[], &[]),
            (&[], &["--server-id=2"], &["--server-id=2"]),
            (&[], &["mysqld", "--server-id=2"], &["--server-id=2"]),
            (&["mysqld"], &["--server-id=2"], &["--server-id=2"]),
            (&["/usr/sbin/mariadbd", "--log-bin"], &[], &["--log-bin"]),
            (&["docker-entrypoint.sh"], &["mariadbd", "--server-id=3"], &["--server-id=3"]),
        ];
        for (command, args, want) in cases {
            let got = server_command(&s(command), &s(args), &mounts(), &options()).unwrap();
            assert_eq!(got.args, s(want), "{command:?} {args:?}");
        }
        assert!(server_command(&s(&["sh", "-c", "mysqld"]), &[], &mounts(), &options()).is_err());
        assert!(server_command(&[], &s(&["bash"]), &mounts(), &options()).is_err());
    }

    #[test]
    fn args_are_translated_loosened_and_owned_options_dropped() {
        let got = server_command(
            &[],
            &s(&[
                "--defaults-extra-file=/etc/mysql/conf.d/my.cnf",
                "--server-id=7",
                "--log-bin=/var/lib/mysql/mysql-bin",
                "--gtid-mode=ON",
                "--bind-address=0.0.0.0",
                "--port",
                "--datadir",
                "/var/lib/mysql/data",
            ]),
            &mounts(),
            &options(),
        )
        .unwrap();
        assert_eq!(
            got.args,
            s(&["--server-id=7", "--log-bin=/st/volumes/ns/data-db-0/mysql-bin", "--loose-gtid-mode=ON",])
        );
        assert_eq!(got.option_files, s(&["/etc/mysql/conf.d/my.cnf"]));
        assert_eq!(got.datadir.as_deref(), Some("/var/lib/mysql/data"));
        assert!(got.notes.iter().any(|n| n.contains("--gtid-mode")));
        assert!(got.notes.iter().any(|n| n.contains("--bind-address")));
    }

    #[test]
    fn option_files_are_rewritten_for_the_host() {
        let text = "[mysqld]\nmax_connections = 77\ngtid_mode=ON\nlog-bin=/var/lib/mysql/bin\n\
                    !includedir /etc/mysql/conf.d/\n!includedir /etc/mysql/mariadb.conf.d/\n\
                    [client]\nfoo=bar\n# comment\n";
        let (out, notes) = rewrite_option_file(text, &mounts(), &options());
        assert_eq!(
            out,
            "[mysqld]\nmax_connections = 77\nloose-gtid_mode=ON\nlog-bin=/st/volumes/ns/data-db-0/bin\n\
             !includedir /st/pods/ns/db-0/volumes/config/\n\
             # !includedir /etc/mysql/mariadb.conf.d/  (not mounted in the pod)\n\
             [client]\nfoo=bar\n# comment\n"
        );
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn my_cnf_puts_agent_settings_after_the_pods_files() {
        let layout = ServerLayout {
            pod: "ns/db-0".into(),
            datadir: "/st/volumes/ns/data-db-0".into(),
            socket: "/st/pods/ns/db-0/mysqld.sock".into(),
            pid_file: "/st/pods/ns/db-0/mysqld.pid".into(),
            tmpdir: "/st/pods/ns/db-0/tmp".into(),
            bind: Ipv4Addr::new(127, 0, 0, 10),
            port: 3306,
            family: Family::MariaDb,
        };
        let cnf = render_my_cnf(&layout, &[PathBuf::from("/st/pods/ns/db-0/cnf.d/00-extra.cnf")]);
        let include = cnf.find("!include /st/pods/ns/db-0/cnf.d/00-extra.cnf").unwrap();
        let bind = cnf.find("bind-address=127.0.0.10").unwrap();
        assert!(include < bind);
        assert!(cnf.contains("user=root\n"));
        assert!(cnf.contains("port=3306\n"));
        assert!(cnf.contains("[client]\nsocket=/st/pods/ns/db-0/mysqld.sock\n"));
        assert!(!cnf.contains("mysqlx"), "MariaDB has no X plugin");
        let mysql = render_my_cnf(&ServerLayout { family: Family::MySql, ..layout }, &[]);
        assert!(mysql.contains("mysqlx=OFF\n") && mysql.contains("secure-file-priv=\n"));
    }

    #[test]
    fn option_file_sources_follow_image_order() {
        let dir = std::env::temp_dir().join(format!("switchyard-cnf-{}", std::process::id()));
        let conf_d = dir.join("conf.d");
        std::fs::create_dir_all(&conf_d).unwrap();
        std::fs::write(conf_d.join("b.cnf"), "").unwrap();
        std::fs::write(conf_d.join("a.cnf"), "").unwrap();
        std::fs::write(conf_d.join("README"), "").unwrap();
        std::fs::write(dir.join("my.cnf"), "").unwrap();
        let mut m = MountTable::new();
        m.add("/etc/mysql/conf.d", &conf_d);
        m.add("/etc/mysql/my.cnf", dir.join("my.cnf"));
        m.add("/config", dir.join("cfg"));
        let got = option_file_sources(&m, &s(&["/config/extra.cnf"]));
        assert_eq!(
            got,
            vec![dir.join("my.cnf"), conf_d.join("a.cnf"), conf_d.join("b.cnf"), dir.join("cfg/extra.cnf"),]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
