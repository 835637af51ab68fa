//! The server installations this node runs pods with: the host's MariaDB, and
//! Oracle MySQL from a Debian sid root file system. Bookworm has no MySQL 8 and
//! cannot run sid's MySQL 9.7 (it needs a newer glibc), so that server runs
//! under `chroot`. The agent's state dir is bind-mounted into the root at the
//! same path, so every path in a pod's my.cnf (datadir, socket, tmpdir,
//! mounted volumes) means the same file inside the root and outside it.

use std::path::{Path, PathBuf};

use super::error::{AgentError, Result};
use super::options::ServerOptions;

/// The server family an image asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    MariaDb,
    /// MySQL and Percona Server images.
    MySql,
}

impl Family {
    /// The name of the server program, as `ps` and the images call it.
    pub fn daemon_name(self) -> &'static str {
        match self {
            Family::MariaDb => "mariadbd",
            Family::MySql => "mysqld",
        }
    }
}

/// One server installation: its programs, version and the options its server
/// accepts.
#[derive(Debug)]
pub struct Installation {
    pub family: Family,
    /// The root file system it lives in; None for the host's own.
    root: Option<PathBuf>,
    /// The server program, as a path inside `root` (or on the host).
    daemon: PathBuf,
    pub version: String,
    pub options: ServerOptions,
}

impl Installation {
    pub fn mariadb(mariadbd: PathBuf) -> Self {
        let mut me = Installation {
            family: Family::MariaDb,
            root: None,
            daemon: mariadbd,
            version: String::new(),
            options: ServerOptions::default(),
        };
        me.detect();
        me
    }

    /// MySQL in `root` (made by `hack/sid-root.sh`); refused when the root has
    /// no `mysqld`, so a mistyped path is an error at start, not pods that
    /// never come up.
    pub fn mysql(root: PathBuf) -> Result<Self> {
        let daemon = PathBuf::from("/usr/sbin/mysqld");
        if !root.join(daemon.strip_prefix("/").unwrap_or(&daemon)).is_file() {
            return Err(AgentError::Invalid(format!(
                "{} has no usr/sbin/mysqld: make it with `hack/sid-root.sh ensure mysql-server-core mysql-client-core`",
                root.display()
            )));
        }
        let mut me = Installation {
            family: Family::MySql,
            root: Some(root),
            daemon,
            version: String::new(),
            options: ServerOptions::default(),
        };
        me.detect();
        Ok(me)
    }

    fn detect(&mut self) {
        let daemon = self.daemon.display().to_string();
        self.version = self
            .std_command(&daemon)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| version_of(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_else(|| "unknown".into());
        self.options = ServerOptions::detect(self.std_command(&daemon));
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// What a container status reports as the image that runs.
    pub fn image_id(&self) -> String {
        format!("{}://{}", self.family.daemon_name(), self.version)
    }

    /// The command-line client of this installation.
    pub fn client_name(&self) -> &'static str {
        match self.family {
            Family::MariaDb => "mariadb",
            Family::MySql => "mysql",
        }
    }

    /// The program and leading arguments that start the server: the daemon
    /// itself, or `chroot ROOT daemon`, which execs it in place, so the
    /// process (its pid, `ps` line and signals) is the server's own.
    pub fn server_program(&self) -> (PathBuf, Vec<String>) {
        self.program(&self.daemon.display().to_string())
    }

    /// `program` of this installation (a name looked up on PATH, or a path).
    pub fn program(&self, program: &str) -> (PathBuf, Vec<String>) {
        program_in(self.root.as_deref(), program)
    }

    pub fn command(&self, program: &str) -> tokio::process::Command {
        command_in(self.root.as_deref(), program)
    }

    pub fn std_command(&self, program: &str) -> std::process::Command {
        let (program, leading) = self.program(program);
        let mut c = std::process::Command::new(program);
        c.args(leading);
        c
    }
}

/// `program` run in `root` (through chroot), or on the host.
pub fn program_in(root: Option<&Path>, program: &str) -> (PathBuf, Vec<String>) {
    match root {
        None => (PathBuf::from(program), Vec::new()),
        Some(root) => (PathBuf::from("/usr/sbin/chroot"), vec![root.display().to_string(), program.to_string()]),
    }
}

pub fn command_in(root: Option<&Path>, program: &str) -> tokio::process::Command {
    let (program, leading) = program_in(root, program);
    let mut c = tokio::process::Command::new(program);
    c.args(leading);
    c
}

/// "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu ..." or
/// "/usr/sbin/mysqld  Ver 9.7.4-2 for Linux on x86_64 ((Debian))".
fn version_of(text: &str) -> Option<String> {
    text.split_whitespace().skip_while(|w| *w != "Ver").nth(1).map(str::to_string)
}

/// What this node can run.
#[derive(Debug)]
pub struct Installations {
    pub mariadb: std::sync::Arc<Installation>,
    pub mysql: Option<std::sync::Arc<Installation>>,
}

impl Installations {
    pub fn of(&self, family: Family) -> Option<std::sync::Arc<Installation>> {
        match family {
            Family::MariaDb => Some(self.mariadb.clone()),
            Family::MySql => self.mysql.clone(),
        }
    }
}

/// Make `dir` (a host directory) visible inside `root` at the same path: a bind
/// mount, made once; an existing one is kept.
pub fn share_into(root: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(AgentError::io(format!("creating {}", dir.display())))?;
    let dir = dir.canonicalize().map_err(AgentError::io(format!("resolving {}", dir.display())))?;
    let target = root.join(dir.strip_prefix("/").unwrap_or(&dir));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if is_mount_point(&mounts, &target) {
        return Ok(());
    }
    std::fs::create_dir_all(&target).map_err(AgentError::io(format!("creating {}", target.display())))?;
    let status = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&dir)
        .arg(&target)
        .status()
        .map_err(AgentError::io("running mount --bind"))?;
    if !status.success() {
        return Err(AgentError::Invalid(format!(
            "mount --bind {} {} failed ({status}): the MySQL root cannot see the pods' files",
            dir.display(),
            target.display()
        )));
    }
    Ok(())
}

/// Whether `path` is a mount point in a `/proc/self/mountinfo` text (field 5).
fn is_mount_point(mountinfo: &str, path: &Path) -> bool {
    let wanted = path.display().to_string();
    mountinfo.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| unescape_octal(m) == wanted))
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_both_servers() {
        assert_eq!(
            version_of("mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64").as_deref(),
            Some("10.11.19-MariaDB-0+deb12u1")
        );
        assert_eq!(
            version_of("/usr/sbin/mysqld  Ver 9.7.4-2 for Linux on x86_64 ((Debian))").as_deref(),
            Some("9.7.4-2")
        );
        assert_eq!(version_of("garbage"), None);
    }

    #[test]
    fn mount_points_are_read_from_mountinfo() {
        let info = "36 35 98:0 / /mnt/sid-root/var/lib/state rw,noatime master:1 - ext4 /dev/vda rw\n\
                    37 35 98:0 / /mnt/with\\040space rw - ext4 /dev/vda rw\n";
        assert!(is_mount_point(info, Path::new("/mnt/sid-root/var/lib/state")));
        assert!(is_mount_point(info, Path::new("/mnt/with space")));
        assert!(!is_mount_point(info, Path::new("/mnt/sid-root/var/lib")));
    }

    #[test]
    fn a_root_programs_run_through_chroot_and_the_hosts_directly() {
        let mysql = Installation {
            family: Family::MySql,
            root: Some("/cache/sid-root".into()),
            daemon: "/usr/sbin/mysqld".into(),
            version: "9.7.4-2".into(),
            options: ServerOptions::default(),
        };
        assert_eq!(
            mysql.server_program(),
            (PathBuf::from("/usr/sbin/chroot"), vec!["/cache/sid-root".to_string(), "/usr/sbin/mysqld".to_string()])
        );
        assert_eq!(mysql.image_id(), "mysqld://9.7.4-2");
        let mariadb =
            Installation { family: Family::MariaDb, root: None, daemon: "/usr/sbin/mariadbd".into(), ..mysql };
        assert_eq!(mariadb.server_program(), (PathBuf::from("/usr/sbin/mariadbd"), vec![]));
    }
}
