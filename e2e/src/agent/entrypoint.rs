//! First start of a server on an empty datadir, following the contract of the
//! official mariadb/mysql images' docker-entrypoint.sh: install the system
//! tables, run a temporary socket-only server, set up root, the database and
//! the user from the environment, run /docker-entrypoint-initdb.d, stop the
//! temporary server. Charts and operators written for those images rely on
//! exactly this behaviour.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::installation::{Family, Installation};
use super::mounts::MountTable;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "Database is uninitialized and password option is not specified. You need to specify one of \
         MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD \
         (or their MYSQL_ equivalents)"
    )]
    NoRootPassword,
    #[error("{step}: {detail}")]
    Step { step: String, detail: String },
}

fn step(step: &str, detail: impl std::fmt::Display) -> InitError {
    InitError::Step { step: step.to_string(), detail: detail.to_string() }
}

/// What the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// None with `random_root_password` false means "empty password allowed".
    pub root_password: Option<String>,
    pub random_root_password: bool,
    pub root_host: String,
    pub database: Option<String>,
    pub user: Option<(String, String)>,
    pub skip_tzinfo: bool,
}

/// Read the environment like the image: MARIADB_X, else MYSQL_X, each also as
/// X_FILE naming a file (read through `read_file`, which maps container paths).
pub fn settings(env: &[(String, String)], read_file: &dyn Fn(&str) -> Option<String>) -> Result<Settings, InitError> {
    let raw = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let get = |suffix: &str| -> Option<String> {
        for prefix in ["MARIADB_", "MYSQL_"] {
            let name = format!("{prefix}{suffix}");
            if let Some(v) = raw(&name).filter(|v| !v.is_empty()) {
                return Some(v);
            }
            if let Some(path) = raw(&format!("{name}_FILE")).filter(|v| !v.is_empty())
                && let Some(v) = read_file(&path)
            {
                return Some(v.trim_end_matches('\n').to_string());
            }
        }
        None
    };
    let yes = |suffix: &str| get(suffix).is_some_and(|v| !matches!(v.as_str(), "0" | "no" | "false"));
    let root_password = get("ROOT_PASSWORD");
    let random_root_password = root_password.is_none() && yes("RANDOM_ROOT_PASSWORD");
    if root_password.is_none()
        && !random_root_password
        && !yes("ALLOW_EMPTY_ROOT_PASSWORD")
        && !yes("ALLOW_EMPTY_PASSWORD")
    {
        return Err(InitError::NoRootPassword);
    }
    let user = get("USER").filter(|u| u != "root");
    Ok(Settings {
        root_password,
        random_root_password,
        root_host: get("ROOT_HOST").unwrap_or_else(|| "%".to_string()),
        database: get("DATABASE"),
        user: user.map(|u| (u, get("PASSWORD").unwrap_or_default())),
        skip_tzinfo: yes("INITDB_SKIP_TZINFO"),
    })
}

/// A single-quoted SQL string literal.
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A backquoted SQL identifier.
pub fn sql_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// The SQL the image runs on the temporary server (docker_setup_db).
pub fn setup_sql(family: Family, s: &Settings, root_password: &str) -> String {
    match family {
        Family::MariaDb => mariadb_setup_sql(s, root_password),
        Family::MySql => mysql_setup_sql(s, root_password),
    }
}

/// The mysql image's docker_setup_db: `--initialize-insecure` made only
/// root@localhost, with no password.
fn mysql_setup_sql(s: &Settings, root_password: &str) -> String {
    let mut sql = String::from(
        "SET @@SESSION.SQL_LOG_BIN=0;\n\
         SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');\n",
    );
    let pw = sql_string(root_password);
    sql.push_str(&format!(
        "ALTER USER 'root'@'localhost' IDENTIFIED BY {pw};\n\
         GRANT ALL ON *.* TO 'root'@'localhost' WITH GRANT OPTION;\n"
    ));
    if s.root_host != "localhost" {
        let host = sql_string(&s.root_host);
        sql.push_str(&format!(
            "CREATE USER 'root'@{host} IDENTIFIED BY {pw};\n\
             GRANT ALL ON *.* TO 'root'@{host} WITH GRANT OPTION;\n"
        ));
    }
    push_database_and_user(&mut sql, s);
    sql
}

fn push_database_and_user(sql: &mut String, s: &Settings) {
    if let Some(db) = &s.database {
        sql.push_str(&format!("CREATE DATABASE IF NOT EXISTS {};\n", sql_ident(db)));
    }
    if let Some((user, password)) = &s.user {
        let user = sql_string(user);
        sql.push_str(&format!("CREATE USER {user}@'%' IDENTIFIED BY {};\n", sql_string(password)));
        if let Some(db) = &s.database {
            sql.push_str(&format!("GRANT ALL ON {}.* TO {user}@'%';\n", sql_ident(db)));
        }
    }
}

fn mariadb_setup_sql(s: &Settings, root_password: &str) -> String {
    let mut sql = String::from(
        "SET @@SESSION.SQL_LOG_BIN=0;\n\
         SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');\n\
         DROP USER IF EXISTS root@'127.0.0.1', root@'::1';\n\
         EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname,'\\'');\n",
    );
    let pw = sql_string(root_password);
    if !root_password.is_empty() {
        sql.push_str(&format!("SET PASSWORD FOR 'root'@'localhost'= PASSWORD({pw});\n"));
    }
    if s.root_host != "localhost" {
        let host = sql_string(&s.root_host);
        sql.push_str(&format!(
            "CREATE USER 'root'@{host} IDENTIFIED BY {pw};\n\
             GRANT ALL ON *.* TO 'root'@{host} WITH GRANT OPTION;\n\
             GRANT PROXY ON ''@'%' TO 'root'@{host} WITH GRANT OPTION;\n"
        ));
    }
    push_database_and_user(&mut sql, s);
    sql
}

fn random_password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 32];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        let seed = jiff::Timestamp::now().as_nanosecond() as u64;
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 8) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    bytes.iter().map(|b| CHARS[*b as usize % CHARS.len()] as char).collect()
}

/// Left in the datadir while a first start runs. The image only checks for
/// the `mysql` schema, so an interrupted first start would later come up
/// half-configured (no root password, no users); with this marker the next
/// start redoes it from scratch instead.
const INCOMPLETE_MARKER: &str = ".switchyard-init-incomplete";

/// An empty datadir, as the image decides it (no `mysql` system schema), or
/// one whose first start did not finish.
pub fn needs_init(datadir: &Path) -> bool {
    !datadir.join("mysql").is_dir() || datadir.join(INCOMPLETE_MARKER).exists()
}

/// Remove what an interrupted first start left behind (all of it was created
/// by that start), keeping the filesystem's own lost+found.
fn clear_incomplete(datadir: &Path) -> std::io::Result<()> {
    if !datadir.join(INCOMPLETE_MARKER).exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(datadir)?.flatten() {
        let path = entry.path();
        if entry.file_name() == "lost+found" {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Everything the first start needs.
pub struct InitJob {
    pub installation: std::sync::Arc<Installation>,
    pub my_cnf: PathBuf,
    pub datadir: PathBuf,
    pub socket: PathBuf,
    pub run_dir: PathBuf,
    pub log: PathBuf,
    /// The pod's own server options; the image passes them to both steps.
    pub server_args: Vec<String>,
    /// The container environment (already resolved).
    pub env: Vec<(String, String)>,
    pub initdb_dir: Option<PathBuf>,
    pub mounts: MountTable,
}

impl InitJob {
    fn log_line(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.log) {
            let _ = writeln!(f, "{} [Entrypoint]: {line}", jiff::Timestamp::now());
        }
    }

    fn log_file(&self) -> Result<std::fs::File, InitError> {
        std::fs::OpenOptions::new().create(true).append(true).open(&self.log).map_err(|e| step("opening mysqld.log", e))
    }

    fn client(&self, password: Option<&str>, database: Option<&str>) -> tokio::process::Command {
        let mut c = self.installation.command(self.installation.client_name());
        c.arg("--no-defaults")
            .arg("--protocol=socket")
            .arg(format!("--socket={}", self.socket.display()))
            .arg("-uroot")
            .arg("--binary-mode")
            .env_remove("MYSQL_PWD")
            .kill_on_drop(true);
        if let Some(db) = database {
            c.arg(format!("--database={db}"));
        }
        if let Some(pw) = password.filter(|p| !p.is_empty()) {
            // Not on the command line, where `ps` would show it.
            c.env("MYSQL_PWD", pw);
        }
        c
    }

    async fn run_sql(
        &self,
        what: &str,
        sql: &[u8],
        password: Option<&str>,
        database: Option<&str>,
    ) -> Result<(), InitError> {
        let mut child = self
            .client(password, database)
            .stdin(Stdio::piped())
            .stdout(self.log_file()?)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| step(what, e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let write = async {
            let r = stdin.write_all(sql).await;
            drop(stdin);
            r
        };
        let (written, output) = tokio::join!(write, child.wait_with_output());
        let output = output.map_err(|e| step(what, e))?;
        if !output.status.success() {
            return Err(step(what, String::from_utf8_lossy(&output.stderr).trim()));
        }
        written.map_err(|e| step(what, e))
    }

    async fn wait_for_temp_server(&self, server: &mut tokio::process::Child) -> Result<(), InitError> {
        for _ in 0..120 {
            if let Ok(Some(status)) = server.try_wait() {
                return Err(step(
                    "temporary server",
                    format!("exited with {status} before accepting connections; see mysqld.log"),
                ));
            }
            let ping = self
                .client(None, None)
                .arg("-e")
                .arg("SELECT 1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if ping.is_ok_and(|s| s.success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(step("temporary server", "did not accept connections within 60s; see mysqld.log"))
    }

    pub async fn run(&self) -> Result<(), InitError> {
        let settings = settings(&self.env, &|path| std::fs::read_to_string(self.mounts.translate_path(path)).ok())?;
        std::fs::create_dir_all(&self.datadir).map_err(|e| step("creating datadir", e))?;
        clear_incomplete(&self.datadir).map_err(|e| step("clearing an interrupted first start", e))?;
        let marker = self.datadir.join(INCOMPLETE_MARKER);
        std::fs::write(&marker, "").map_err(|e| step("marking the first start", e))?;
        self.log_line("Initializing database files");
        self.install_system_tables().await?;
        self.log_line("Starting temporary server");
        let mut server = self.temporary_server()?;
        let result = self.configure(&settings, &mut server).await;

        self.log_line("Stopping temporary server");
        if let Some(pid) = server.id() {
            let _ = super::process::send_signal(pid, libc::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(120), server.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = server.kill().await;
            }
        }
        if result.is_ok() {
            std::fs::remove_file(&marker).map_err(|e| step("unmarking the first start", e))?;
            self.log_line("init process done. Ready for start up.");
        }
        result
    }

    /// The system schema: mariadb-install-db, or `mysqld --initialize-insecure`
    /// (root@localhost with no password, set by the setup SQL right after).
    async fn install_system_tables(&self) -> Result<(), InitError> {
        let defaults = format!("--defaults-file={}", self.my_cnf.display());
        let datadir = format!("--datadir={}", self.datadir.display());
        let (what, mut install) = match self.installation.family {
            Family::MySql => {
                let (program, leading) = self.installation.server_program();
                let mut c = tokio::process::Command::new(program);
                c.args(leading)
                    .arg(&defaults)
                    .args(&self.server_args)
                    .args(["--initialize-insecure", "--user=root", "--default-time-zone=SYSTEM"])
                    .arg(&datadir);
                ("mysqld --initialize-insecure", c)
            }
            Family::MariaDb => {
                let mut c = tokio::process::Command::new("mariadb-install-db");
                c.arg(&defaults)
                    .args(["--user=root", "--rpm", "--auth-root-authentication-method=normal", "--skip-test-db"])
                    .arg(&datadir)
                    .args(["--default-time-zone=SYSTEM", "--enforce-storage-engine=", "--skip-log-bin"])
                    .args(["--expire-logs-days=0", "--loose-innodb_buffer_pool_load_at_startup=0"])
                    .arg("--loose-innodb_buffer_pool_dump_at_shutdown=0")
                    .args(&self.server_args);
                ("mariadb-install-db", c)
            }
        };
        let status = install
            .stdin(Stdio::null())
            .stdout(self.log_file()?)
            .stderr(self.log_file()?)
            .kill_on_drop(true)
            .status()
            .await
            .map_err(|e| step(what, e))?;
        if !status.success() {
            return Err(step(what, format!("{status}; see mysqld.log")));
        }
        Ok(())
    }

    /// A server on the socket only, as the images run for their setup.
    fn temporary_server(&self) -> Result<tokio::process::Child, InitError> {
        let (program, leading) = self.installation.server_program();
        let family_options: &[&str] = match self.installation.family {
            Family::MariaDb => &[
                "--wsrep_on=OFF",
                "--expire-logs-days=0",
                "--skip-slave-start",
                "--loose-innodb_buffer_pool_load_at_startup=0",
                "--skip-ssl",
            ],
            Family::MySql => &["--skip-replica-start", "--innodb-buffer-pool-load-at-startup=0"],
        };
        tokio::process::Command::new(program)
            .args(leading)
            .arg(format!("--defaults-file={}", self.my_cnf.display()))
            .args(&self.server_args)
            .args(["--skip-networking", "--default-time-zone=SYSTEM"])
            .args(family_options)
            .arg(format!("--socket={}", self.socket.display()))
            // Visible to `ps` like the real server's (see supervisor::prepare).
            .arg(format!("--datadir={}", self.datadir.display()))
            .stdin(Stdio::null())
            .stdout(self.log_file()?)
            .stderr(self.log_file()?)
            // If the pod goes away mid-init, dropping this future kills it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| step("temporary server", e))
    }

    async fn configure(&self, settings: &Settings, server: &mut tokio::process::Child) -> Result<(), InitError> {
        self.wait_for_temp_server(server).await?;
        if !settings.skip_tzinfo {
            // Not binlogged: every instance loads its own, and a GTID that
            // only one instance has would be an errant transaction.
            let (tool, mut sql) = match self.installation.family {
                Family::MariaDb => ("mariadb-tzinfo-to-sql", Vec::new()),
                Family::MySql => ("mysql_tzinfo_to_sql", b"SET SESSION sql_log_bin=0;\n".to_vec()),
            };
            let mut tz = self.installation.command(tool);
            if self.installation.family == Family::MariaDb {
                tz.arg("--skip-write-binlog");
            }
            let tz = tz
                .arg("/usr/share/zoneinfo")
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| step(tool, e))?;
            sql.extend_from_slice(&tz.stdout);
            self.run_sql("loading time zones", &sql, None, Some("mysql")).await?;
        }
        let root_password = match (&settings.root_password, settings.random_root_password) {
            (Some(pw), _) => pw.clone(),
            (None, true) => {
                let pw = random_password();
                self.log_line(&format!("GENERATED ROOT PASSWORD: {pw}"));
                pw
            }
            (None, false) => String::new(),
        };
        self.log_line("Securing system users and creating the database and user from the environment");
        let setup = setup_sql(self.installation.family, settings, &root_password);
        self.run_sql("setting up users", setup.as_bytes(), None, None).await?;
        self.run_init_scripts(settings, &root_password).await
    }

    async fn run_init_scripts(&self, settings: &Settings, root_password: &str) -> Result<(), InitError> {
        let Some(dir) = &self.initdb_dir else { return Ok(()) };
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        let database = settings.database.as_deref();
        for file in files {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let decompress = |tool: &str| -> Result<Vec<u8>, InitError> {
                let out =
                    std::process::Command::new(tool).arg("-dc").arg(&file).output().map_err(|e| step(&name, e))?;
                if out.status.success() {
                    Ok(out.stdout)
                } else {
                    Err(step(&name, String::from_utf8_lossy(&out.stderr).trim()))
                }
            };
            let sql = if name.ends_with(".sql") {
                Some(std::fs::read(&file).map_err(|e| step(&name, e))?)
            } else if name.ends_with(".sql.gz") {
                Some(decompress("gzip")?)
            } else if name.ends_with(".sql.xz") {
                Some(decompress("xz")?)
            } else if name.ends_with(".sql.zst") {
                Some(decompress("zstd")?)
            } else {
                None
            };
            if let Some(sql) = sql {
                self.log_line(&format!("running {name}"));
                self.run_sql(&name, &sql, Some(root_password), database).await?;
            } else if name.ends_with(".sh") {
                self.log_line(&format!("sourcing {name}"));
                self.run_shell(&file, &name, settings, root_password).await?;
            } else {
                self.log_line(&format!("ignoring {name}"));
            }
        }
        Ok(())
    }

    /// The image sources .sh scripts in its own shell, where
    /// `docker_process_sql` and `${mysql[@]}` reach the temporary server.
    async fn run_shell(
        &self,
        file: &Path,
        name: &str,
        settings: &Settings,
        root_password: &str,
    ) -> Result<(), InitError> {
        let text = std::fs::read_to_string(file).map_err(|e| step(name, e))?;
        let copy = self.run_dir.join("tmp").join(format!("initdb-{name}"));
        std::fs::create_dir_all(self.run_dir.join("tmp")).map_err(|e| step(name, e))?;
        std::fs::write(&copy, self.mounts.translate_text(&text)).map_err(|e| step(name, e))?;
        let socket = self.socket.display().to_string();
        let client = self.installation.client_name();
        let prelude = format!(
            "mysql=( {client} --protocol=socket -uroot -hlocalhost --socket={socket} )\n\
             docker_process_sql() {{ if [ -n \"$MARIADB_DATABASE\" ]; then set -- --database=\"$MARIADB_DATABASE\" \"$@\"; \
             elif [ -n \"$MYSQL_DATABASE\" ]; then set -- --database=\"$MYSQL_DATABASE\" \"$@\"; fi; \
             {client} --protocol=socket -uroot -hlocalhost --socket={socket} \"$@\"; }}\n\
             mysql_note() {{ echo \"[Note] [Entrypoint]: $*\"; }}\n\
             mysql_warn() {{ echo \"[Warn] [Entrypoint]: $*\" >&2; }}\n\
             set -e\nsource \"$1\"\n"
        );
        let mut env: Vec<(String, String)> = self.env.clone();
        // Like the image, scripts see each setting under both names.
        for (suffix, value) in [
            ("ROOT_PASSWORD", Some(root_password.to_string())),
            ("DATABASE", settings.database.clone()),
            ("USER", settings.user.as_ref().map(|u| u.0.clone())),
            ("PASSWORD", settings.user.as_ref().map(|u| u.1.clone())),
            ("ROOT_HOST", Some(settings.root_host.clone())),
        ] {
            if let Some(value) = value {
                for prefix in ["MARIADB_", "MYSQL_"] {
                    env.push((format!("{prefix}{suffix}"), value.clone()));
                }
            }
        }
        env.push(("MYSQL_UNIX_PORT".into(), socket.clone()));
        env.push(("MYSQL_HOME".into(), self.run_dir.display().to_string()));
        env.push(("MYSQL_PWD".into(), root_password.to_string()));
        let path = match self.installation.root() {
            // The root's own programs, not the host's.
            Some(_) => "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            None => std::env::var("PATH").unwrap_or_default(),
        };
        env.push(("PATH".into(), path));
        let status = self
            .installation
            .command("bash")
            .arg("-c")
            .arg(prelude)
            .arg(name)
            .arg(&copy)
            .env_clear()
            .envs(env)
            .current_dir(&self.run_dir)
            .stdin(Stdio::null())
            .stdout(self.log_file()?)
            .stderr(self.log_file()?)
            .kill_on_drop(true)
            .status()
            .await
            .map_err(|e| step(name, e))?;
        if status.success() { Ok(()) } else { Err(step(name, format!("{status}; see mysqld.log"))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn no_files(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_password_option_is_required() {
        assert!(matches!(settings(&env(&[]), &no_files), Err(InitError::NoRootPassword)));
        let s = settings(&env(&[("MYSQL_ALLOW_EMPTY_PASSWORD", "yes")]), &no_files).unwrap();
        assert_eq!(s.root_password, None);
        assert!(!s.random_root_password);
        let s = settings(&env(&[("MARIADB_RANDOM_ROOT_PASSWORD", "1")]), &no_files).unwrap();
        assert!(s.random_root_password);
    }

    #[test]
    fn mariadb_names_win_over_mysql_names_and_files_work() {
        let s = settings(
            &env(&[
                ("MYSQL_ROOT_PASSWORD", "mysql-pw"),
                ("MARIADB_ROOT_PASSWORD", "maria-pw"),
                ("MYSQL_DATABASE", "app"),
                ("MYSQL_USER", "appuser"),
                ("MARIADB_PASSWORD_FILE", "/run/secrets/pw"),
            ]),
            &|p| (p == "/run/secrets/pw").then(|| "from-file\n".to_string()),
        )
        .unwrap();
        assert_eq!(s.root_password.as_deref(), Some("maria-pw"));
        assert_eq!(s.database.as_deref(), Some("app"));
        assert_eq!(s.user, Some(("appuser".to_string(), "from-file".to_string())));
        assert_eq!(s.root_host, "%");
    }

    /// Root password, root on every host, a database and a user.
    fn everything(database: &str) -> Settings {
        Settings {
            root_password: Some("p'w".into()),
            random_root_password: false,
            root_host: "%".into(),
            database: Some(database.into()),
            user: Some(("u".into(), "secret".into())),
            skip_tzinfo: false,
        }
    }

    #[test]
    fn setup_sql_creates_root_everywhere_database_and_user() {
        let s = everything("app`db");
        let sql = setup_sql(Family::MariaDb, &s, "p'w");
        assert!(sql.contains("SET PASSWORD FOR 'root'@'localhost'= PASSWORD('p\\'w');"));
        assert!(sql.contains("CREATE USER 'root'@'%' IDENTIFIED BY 'p\\'w';"));
        assert!(sql.contains("CREATE DATABASE IF NOT EXISTS `app``db`;"));
        assert!(sql.contains("CREATE USER 'u'@'%' IDENTIFIED BY 'secret';"));
        assert!(sql.contains("GRANT ALL ON `app``db`.* TO 'u'@'%';"));
        assert!(sql.starts_with("SET @@SESSION.SQL_LOG_BIN=0;"));

        let local_only = Settings { root_host: "localhost".into(), root_password: None, ..s };
        let sql = setup_sql(Family::MariaDb, &local_only, "");
        assert!(!sql.contains("SET PASSWORD"));
        assert!(!sql.contains("'root'@'%'"));
    }

    #[test]
    fn mysql_setup_sql_sets_the_password_initialize_left_empty() {
        let sql = setup_sql(Family::MySql, &everything("shop"), "p'w");
        assert!(sql.starts_with("SET @@SESSION.SQL_LOG_BIN=0;"));
        assert!(sql.contains("ALTER USER 'root'@'localhost' IDENTIFIED BY 'p\\'w';"));
        assert!(sql.contains("CREATE USER 'root'@'%' IDENTIFIED BY 'p\\'w';"));
        assert!(sql.contains("CREATE USER 'u'@'%' IDENTIFIED BY 'secret';"));
        // MariaDB's functions and statements are not MySQL's.
        assert!(!sql.contains("PASSWORD(") && !sql.contains("EXECUTE IMMEDIATE") && !sql.contains("PROXY"));
    }

    #[test]
    fn an_interrupted_first_start_is_redone() {
        let dir = std::env::temp_dir().join(format!("switchyard-init-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("mysql")).unwrap();
        std::fs::create_dir_all(dir.join("lost+found")).unwrap();
        std::fs::write(dir.join("ibdata1"), "x").unwrap();
        assert!(!needs_init(&dir));
        std::fs::write(dir.join(INCOMPLETE_MARKER), "").unwrap();
        assert!(needs_init(&dir));
        clear_incomplete(&dir).unwrap();
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("lost+found")]);
        assert!(needs_init(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn random_passwords_differ() {
        let (a, b) = (random_password(), random_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
