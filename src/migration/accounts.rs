//! Accounts: step 3 of a migration. Copies the selected accounts to the
//! target with their authentication plugin and stored hash (never a
//! plaintext password), then the grants they hold on the migrated databases:
//! database, table, column and routine privileges. `check` verifies the same
//! before the switch, so applications can log in to the target unchanged.
//!
//! Not migrated: global (`*.*`) privileges, roles and role grants, proxy
//! grants, and grants on databases outside the migration; these belong to
//! the target cluster's administrators. Accounts without a copyable hash
//! (unix_socket, PAM, GSSAPI, LDAP, several `OR` methods, a plugin the target
//! lacks) are reported as unsupported by name, never skipped silently.

use std::collections::BTreeSet;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, Error, FromValueError, Row, Value};

use super::api::{AccountsStatus, UnsupportedAccount};
use super::validate::parse_account;
use crate::mysql::Flavor;
use crate::mysql::sql::quote;

/// How an account authenticates: the plugin and its stored string.
#[derive(Debug)]
struct Auth {
    plugin: String,
    auth: Vec<u8>,
    /// MariaDB keeps a one-element `auth_or` after an ALTER of a multi-method
    /// account, so only two or more mean several methods.
    methods: i64,
}

/// Copies `accounts` ("user@host") to the target: creates or updates each with
/// the source's plugin and authentication string, then adds the source's
/// grants on `databases` that the target lacks. Idempotent: a rerun executes
/// nothing, and `diff` lists only the grant statements executed in this run.
pub async fn copy(
    source: &mut Conn,
    source_flavor: Flavor,
    target: &mut Conn,
    target_flavor: Flavor,
    accounts: &[String],
    databases: &[String],
) -> Result<AccountsStatus, Error> {
    let mut status = AccountsStatus::default();
    for account in accounts {
        let (user, host, wanted) = match inspect(source, source_flavor, target_flavor, account).await? {
            Ok(found) => found,
            Err(reason) => {
                status.unsupported.push(UnsupportedAccount { name: account.clone(), reason });
                continue;
            }
        };
        let statement = match read_auth(target, target_flavor, user, host).await? {
            None => Some(create_user(target_flavor, user, host, &wanted.plugin, &wanted.auth)),
            Some(have) if have.plugin == wanted.plugin && have.auth == wanted.auth && have.methods <= 1 => None,
            Some(_) => Some(alter_user(target_flavor, user, host, &wanted.plugin, &wanted.auth)),
        };
        if let Some(statement) = statement
            && let Err(why) = run(target, &statement).await?
        {
            // The statement holds the hash, so only the server's reason is reported.
            let reason = format!("the target refused to create or update the account: {why}");
            status.unsupported.push(UnsupportedAccount { name: account.clone(), reason });
            continue;
        }
        let (from, to) = (show_grants(source, user, host).await?, show_grants(target, user, host).await?);
        let mut refused = None;
        for line in missing_grants(&from, &to, databases) {
            match run(target, &line).await? {
                Ok(()) => status.diff.push(line),
                Err(why) => {
                    refused = Some(format!("the target refused \"{line}\": {why}"));
                    break;
                }
            }
        }
        match refused {
            Some(reason) => status.unsupported.push(UnsupportedAccount { name: account.clone(), reason }),
            None => status.migrated.push(account.clone()),
        }
    }
    Ok(status)
}

/// Problems that would make applications fail after the switch, one message
/// each (empty = all good): an account missing on the target, a different
/// plugin or authentication string, a source grant on `databases` missing on
/// the target. Accounts that cannot be copied at all (unknown on the source,
/// no copyable hash) are skipped, as `copy` reports them; one whose grant the
/// target refused is reported here as lacking that grant.
pub async fn check(
    source: &mut Conn,
    source_flavor: Flavor,
    target: &mut Conn,
    target_flavor: Flavor,
    accounts: &[String],
    databases: &[String],
) -> Result<Vec<String>, Error> {
    let mut problems = Vec::new();
    for account in accounts {
        // Unsupported accounts were reported by `copy` already.
        let Ok((user, host, wanted)) = inspect(source, source_flavor, target_flavor, account).await? else {
            continue;
        };
        let Some(have) = read_auth(target, target_flavor, user, host).await? else {
            problems.push(format!("{account} does not exist on the target"));
            continue;
        };
        if have.plugin != wanted.plugin {
            problems.push(format!(
                "{account} authenticates with {} on the target but {} on the source",
                have.plugin, wanted.plugin
            ));
        } else if have.auth != wanted.auth {
            problems.push(format!("{account} has a different password hash on the target than on the source"));
        }
        let (from, to) = (show_grants(source, user, host).await?, show_grants(target, user, host).await?);
        for line in missing_grants(&from, &to, databases) {
            problems.push(format!("{account} lacks on the target: {line}"));
        }
    }
    Ok(problems)
}

/// The source's authentication of a copyable account, or why it cannot be copied.
async fn inspect<'a>(
    source: &mut Conn,
    source_flavor: Flavor,
    target_flavor: Flavor,
    account: &'a str,
) -> Result<Result<(&'a str, &'a str, Auth), String>, Error> {
    let (user, host) = match parse_account(account) {
        Ok(parts) => parts,
        Err(why) => return Ok(Err(why)),
    };
    let Some(auth) = read_auth(source, source_flavor, user, host).await? else {
        return Ok(Err("does not exist on the source".into()));
    };
    if auth.methods > 1 {
        return Ok(
            Err("has several authentication methods (IDENTIFIED VIA ... OR ...), which cannot be copied".into()),
        );
    }
    Ok(plugin_support(&auth.plugin, &auth.auth, target_flavor).map(|()| (user, host, auth)))
}

async fn read_auth(conn: &mut Conn, flavor: Flavor, user: &str, host: &str) -> Result<Option<Auth>, Error> {
    // MariaDB 10.4+ keeps accounts as JSON; mysql.user is only a view there.
    let query = if flavor.is_mariadb() {
        "SELECT JSON_VALUE(Priv,'$.plugin'), JSON_VALUE(Priv,'$.authentication_string'), \
         JSON_LENGTH(Priv,'$.auth_or') FROM mysql.global_priv WHERE User=? AND Host=?"
    } else {
        "SELECT plugin, authentication_string, 0 FROM mysql.user WHERE User=? AND Host=?"
    };
    let Some(mut row) = conn.exec_first::<Row, _, _>(query, (user, host)).await? else {
        return Ok(None);
    };
    let plugin: Option<Vec<u8>> = column(&mut row, 0)?;
    let auth: Option<Vec<u8>> = column(&mut row, 1)?;
    let methods: Option<i64> = column(&mut row, 2)?;
    let auth = auth.unwrap_or_default();
    let plugin = resolve_plugin(&String::from_utf8_lossy(&plugin.unwrap_or_default()), &auth);
    Ok(Some(Auth { plugin, auth, methods: methods.unwrap_or(0) }))
}

/// Reads a column without the panic `FromRow` has on unexpected values.
fn column<T: mysql_async::prelude::FromValue>(row: &mut Row, index: usize) -> Result<T, Error> {
    match row.take_opt(index) {
        Some(Ok(value)) => Ok(value),
        Some(Err(FromValueError(value))) => Err(DriverError::FromValue { value }.into()),
        None => Err(DriverError::FromValue { value: Value::NULL }.into()),
    }
}

async fn show_grants(conn: &mut Conn, user: &str, host: &str) -> Result<Vec<String>, Error> {
    let rows: Vec<Row> = conn.query(format!("SHOW GRANTS FOR {}", account_sql(user, host))).await?;
    let mut lines = Vec::with_capacity(rows.len());
    for mut row in rows {
        let line: Vec<u8> = column(&mut row, 0)?;
        lines.push(String::from_utf8_lossy(&line).into_owned());
    }
    Ok(lines)
}

/// Runs a statement; the server's refusal is an answer, not a failure.
async fn run(conn: &mut Conn, statement: &str) -> Result<Result<(), String>, Error> {
    match conn.query_drop(statement).await {
        Ok(()) => Ok(Ok(())),
        Err(Error::Server(e)) => Ok(Err(format!("{} ({})", e.message, e.code))),
        Err(e) => Err(e),
    }
}

/// MariaDB may leave the plugin out for pre-plugin accounts; the server then
/// infers it from the hash.
fn resolve_plugin(plugin: &str, auth: &[u8]) -> String {
    match (plugin, auth.len()) {
        ("", 0 | 41) => "mysql_native_password".into(),
        ("", 16) => "mysql_old_password".into(),
        (p, _) => p.to_string(),
    }
}

/// Whether a hash made by `plugin` can be installed on a `target` server.
fn plugin_support(plugin: &str, auth: &[u8], target: Flavor) -> Result<(), String> {
    let lacks = |flavor| Err(format!("authenticates with {plugin}, which a {flavor} target does not support"));
    match plugin {
        "mysql_native_password" => {
            let hash = auth.len() == 41 && auth[0] == b'*' && auth[1..].iter().all(u8::is_ascii_hexdigit);
            if auth.is_empty() || hash {
                Ok(())
            } else {
                Err("has a mysql_native_password string that is not a password hash".into())
            }
        }
        "ed25519" if target.is_mariadb() => Ok(()),
        "ed25519" => lacks("MySQL"),
        "caching_sha2_password" | "sha256_password" if !target.is_mariadb() => Ok(()),
        "caching_sha2_password" | "sha256_password" => lacks("MariaDB"),
        "" => Err("has no authentication plugin and an unrecognised authentication string".into()),
        // Authentication by the OS or a directory: the server stores no secret.
        p if p.contains("socket")
            || p.starts_with("authentication_")
            || matches!(p, "named_pipe" | "pam" | "gssapi") =>
        {
            Err(format!("authenticates with {p}, which has no password hash to copy"))
        }
        p => Err(format!("authenticates with {p}, whose credentials cannot be copied")),
    }
}

fn account_sql(user: &str, host: &str) -> String {
    format!("{}@{}", quote(user), quote(host))
}

/// A literal for a stored hash. caching_sha2_password salts are raw bytes,
/// so anything beyond plain printable text goes as hex, which also sidesteps
/// the session's backslash-escape mode.
fn auth_literal(auth: &[u8]) -> String {
    if auth.iter().all(|b| b.is_ascii_graphic() && *b != b'\'' && *b != b'\\') {
        quote(&String::from_utf8_lossy(auth))
    } else {
        let hex: String = auth.iter().map(|b| format!("{b:02X}")).collect();
        format!("0x{hex}")
    }
}

fn create_user(flavor: Flavor, user: &str, host: &str, plugin: &str, auth: &[u8]) -> String {
    format!("CREATE USER IF NOT EXISTS {}", user_spec(flavor, user, host, plugin, auth))
}

fn alter_user(flavor: Flavor, user: &str, host: &str, plugin: &str, auth: &[u8]) -> String {
    format!("ALTER USER {}", user_spec(flavor, user, host, plugin, auth))
}

fn user_spec(flavor: Flavor, user: &str, host: &str, plugin: &str, auth: &[u8]) -> String {
    let account = account_sql(user, host);
    if flavor.is_mariadb() {
        format!("{account} IDENTIFIED VIA {plugin} USING {}", auth_literal(auth))
    } else {
        format!("{account} IDENTIFIED WITH {plugin} AS {}", auth_literal(auth))
    }
}

/// One SHOW GRANTS line on an object of a migrated database.
#[derive(Debug, PartialEq)]
struct Grant {
    /// Routine kind (empty for databases and tables), database, object or `*`.
    object: (String, String, String),
    privileges: BTreeSet<String>,
    grant_option: bool,
}

/// Source grant lines on `databases` whose privileges the target lacks. Lines
/// are compared by object and privilege set, not text, so a target holding
/// more (or ALL PRIVILEGES) counts as having them and reruns add nothing.
fn missing_grants(source: &[String], target: &[String], databases: &[String]) -> Vec<String> {
    let have: Vec<Grant> = target.iter().filter_map(|l| parse_grant(l, databases)).collect();
    let mut missing = Vec::new();
    for line in source {
        let Some(want) = parse_grant(line, databases) else { continue };
        let same: Vec<&Grant> = have.iter().filter(|g| g.object == want.object).collect();
        let all = same.iter().any(|g| g.privileges.contains("ALL PRIVILEGES"));
        let held = all || want.privileges.iter().all(|p| same.iter().any(|g| g.privileges.contains(p)));
        let option = !want.grant_option || same.iter().any(|g| g.grant_option);
        if !(held && option) {
            missing.push(line.trim().to_string());
        }
    }
    missing
}

/// Parses `GRANT <privileges> ON [PROCEDURE|FUNCTION|PACKAGE [BODY]] db.obj TO
/// ...`; None for global grants, roles, proxies and other databases.
fn parse_grant(line: &str, databases: &[String]) -> Option<Grant> {
    let line = normalize(line);
    let rest = strip_prefix_ci(&line, "GRANT ")?;
    let on = find_top(rest, " ON ")?;
    let (privileges, mut object) = (&rest[..on], &rest[on + 4..]);
    let mut kind = "";
    for k in ["PROCEDURE ", "FUNCTION ", "PACKAGE BODY ", "PACKAGE "] {
        if let Some(after) = strip_prefix_ci(object, k) {
            (kind, object) = (k.trim_end(), after);
            break;
        }
    }
    let (db, after) = parse_ident(object)?;
    let after = after.strip_prefix('.')?;
    let (name, after) = match after.strip_prefix('*') {
        Some(after) => ("*".to_string(), after),
        None => parse_ident(after)?,
    };
    let grantee = strip_prefix_ci(after, " TO ")?;
    if !databases.iter().any(|d| *d == db || *d == unescape_wildcards(&db)) {
        return None;
    }
    let grant_option = grantee.to_ascii_uppercase().ends_with(" WITH GRANT OPTION");
    Some(Grant { object: (kind.to_string(), db, name), privileges: privilege_set(privileges), grant_option })
}

/// Collapses whitespace outside backquotes, where it is insignificant.
fn normalize(line: &str) -> String {
    let (mut out, mut quoted, mut space) = (String::with_capacity(line.len()), false, false);
    for c in line.trim().chars() {
        if c == '`' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Byte offset of `needle` outside backquotes and parentheses.
fn find_top(s: &str, needle: &str) -> Option<usize> {
    let (mut quoted, mut depth) = (false, 0usize);
    for (i, &b) in s.as_bytes().iter().enumerate() {
        match b {
            b'`' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            _ if !quoted && depth == 0 && s.get(i..).and_then(|t| strip_prefix_ci(t, needle)).is_some() => {
                return Some(i);
            }
            _ => {}
        }
    }
    None
}

/// A backquoted (with ``` `` ``` for a backquote) or bare identifier.
fn parse_ident(s: &str) -> Option<(String, &str)> {
    if let Some(body) = s.strip_prefix('`') {
        let mut name = String::new();
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '`' {
                name.push(c);
            } else if chars.peek().is_some_and(|&(_, n)| n == '`') {
                chars.next();
                name.push('`');
            } else {
                return Some((name, &body[i + 1..]));
            }
        }
        return None;
    }
    let end = s.find(['.', ' ']).unwrap_or(s.len());
    let name = &s[..end];
    (!name.is_empty() && !name.contains(['*', '\'', '@'])).then(|| (name.to_string(), &s[end..]))
}

/// Grants often escape `_` so it is not a wildcard: `app\_db` means `app_db`.
fn unescape_wildcards(db: &str) -> String {
    db.replace("\\_", "_").replace("\\%", "%")
}

/// Privileges one by one, a column privilege once per column, so that
/// `SELECT (a, b)` and `SELECT (b), SELECT (a)` compare equal.
fn privilege_set(list: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for item in split_top(list, b',') {
        let item = item.trim();
        match item.split_once('(') {
            Some((name, columns)) => {
                let name = name.trim().to_ascii_uppercase();
                for column in split_top(columns.trim_end().trim_end_matches(')'), b',') {
                    set.insert(format!("{name} ({})", column.trim()));
                }
            }
            None if item.eq_ignore_ascii_case("ALL") => {
                set.insert("ALL PRIVILEGES".to_string());
            }
            None => {
                set.insert(item.to_ascii_uppercase());
            }
        }
    }
    set
}

fn split_top(s: &str, sep: u8) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut depth) = (Vec::new(), 0, false, 0usize);
    for (i, &b) in s.as_bytes().iter().enumerate() {
        match b {
            b'`' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            _ if b == sep && !quoted && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: Flavor = Flavor::MariaDb { major: 10, minor: 11 };
    const MYSQL: Flavor = Flavor::MySql { major: 8, minor: 4 };
    const HASH: &str = "*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9";

    fn dbs() -> Vec<String> {
        vec!["e2e".into(), "my.db".into(), "app_db".into()]
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keeps_grants_on_migrated_databases_only() {
        let d = dbs();
        let kept = |l: &str| parse_grant(l, &d).is_some();
        assert!(kept("GRANT SELECT, INSERT, UPDATE, DELETE ON `e2e`.* TO `app_rw`@`%`"));
        assert!(kept("GRANT SELECT ON e2e.* TO 'app'@'%'"));
        assert!(kept("GRANT SELECT ON `e2e`.`orders` TO `app_ro`@`%`"));
        assert!(kept("GRANT SELECT ON `e2e`.orders TO `app_ro`@`%`"));
        assert!(kept("GRANT EXECUTE ON PROCEDURE `e2e`.`p` TO `app_ro`@`%`"));
        assert!(kept("grant execute on function `e2e`.`f` to `app_ro`@`%`"));
        assert!(kept("GRANT SELECT ON `my.db`.* TO `app_ro`@`%`"));
        assert!(kept("GRANT ALL PRIVILEGES ON `app\\_db`.* TO `app`@`%`"));
        assert!(!kept("GRANT SELECT ON `other`.* TO `app_ro`@`%`"));
        assert!(!kept("GRANT SELECT ON `my`.`db` TO `app_ro`@`%`"));
        assert!(!kept("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*6BB4'"));
        assert!(!kept("GRANT RELOAD, PROCESS ON *.* TO `app`@`%`"));
        assert!(!kept("GRANT `r1` TO `app_ro`@`%`"));
        assert!(!kept("GRANT `role on e2e` TO `app_ro`@`%`"));
        assert!(!kept("GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION"));
    }

    #[test]
    fn parses_objects_and_privileges() {
        let g = parse_grant("GRANT SELECT (`c`, `a b`), insert ON  `e2e`.`we ird``t` TO `x`@`%`", &dbs()).unwrap();
        assert_eq!(g.object, (String::new(), "e2e".into(), "we ird`t".into()));
        let want: BTreeSet<String> =
            ["INSERT", "SELECT (`a b`)", "SELECT (`c`)"].iter().map(|s| s.to_string()).collect();
        assert_eq!(g.privileges, want);
        assert!(!g.grant_option);
        let g = parse_grant("GRANT EXECUTE ON PROCEDURE `e2e`.`p` TO `u`@`%` WITH GRANT OPTION", &dbs()).unwrap();
        assert_eq!(g.object, ("PROCEDURE".into(), "e2e".into(), "p".into()));
        assert!(g.grant_option);
    }

    #[test]
    fn missing_grants_compare_privileges_not_text() {
        let d = dbs();
        let source = lines(&[
            "GRANT USAGE ON *.* TO `app`@`%`",
            "GRANT SELECT, INSERT ON `e2e`.* TO `app`@`%`",
            "GRANT SELECT (`a`, `b`) ON `e2e`.`t` TO `app`@`%`",
            "GRANT EXECUTE ON PROCEDURE `e2e`.`p` TO `app`@`%`",
            "GRANT SELECT ON `other`.* TO `app`@`%`",
        ]);
        assert_eq!(missing_grants(&source, &[], &d), source[1..4].to_vec());
        let target = lines(&[
            "GRANT INSERT, SELECT, DELETE ON `e2e`.* TO `app`@`%`",
            "GRANT SELECT (`b`, `a`) ON `e2e`.`t` TO `app`@`%`",
        ]);
        assert_eq!(missing_grants(&source, &target, &d), vec![source[3].clone()]);
        let all = lines(&["GRANT ALL PRIVILEGES ON `e2e`.* TO `app`@`%`"]);
        assert_eq!(missing_grants(&source[..2], &all, &d), Vec::<String>::new());
        let with_option = lines(&["GRANT SELECT ON `e2e`.* TO `app`@`%` WITH GRANT OPTION"]);
        let plain = lines(&["GRANT SELECT ON `e2e`.* TO `app`@`%`"]);
        assert_eq!(missing_grants(&with_option, &plain, &d), with_option);
        assert!(missing_grants(&plain, &with_option, &d).is_empty());
    }

    #[test]
    fn plugin_support_per_target() {
        let native = HASH.as_bytes();
        assert!(plugin_support("mysql_native_password", native, MARIADB).is_ok());
        assert!(plugin_support("mysql_native_password", native, MYSQL).is_ok());
        assert!(plugin_support("mysql_native_password", b"", MYSQL).is_ok());
        assert!(plugin_support("mysql_native_password", b"*XYZ", MYSQL).is_err());
        assert!(plugin_support("ed25519", b"ZIgU", MARIADB).is_ok());
        let e = plugin_support("ed25519", b"ZIgU", MYSQL).unwrap_err();
        assert!(e.contains("ed25519") && e.contains("MySQL"), "{e}");
        assert!(plugin_support("caching_sha2_password", b"$A$005$", MYSQL).is_ok());
        assert!(plugin_support("sha256_password", b"$5$", MYSQL).is_ok());
        let e = plugin_support("caching_sha2_password", b"$A$005$", MARIADB).unwrap_err();
        assert!(e.contains("caching_sha2_password") && e.contains("MariaDB"), "{e}");
        for p in ["unix_socket", "auth_socket", "pam", "gssapi", "authentication_ldap_sasl"] {
            let e = plugin_support(p, b"", MARIADB).unwrap_err();
            assert_eq!(e, format!("authenticates with {p}, which has no password hash to copy"));
        }
        assert!(plugin_support("mysql_old_password", b"0123456789abcdef", MARIADB).is_err());
        assert_eq!(resolve_plugin("", native), "mysql_native_password");
        assert_eq!(resolve_plugin("", b""), "mysql_native_password");
        assert_eq!(resolve_plugin("ed25519", b"x"), "ed25519");
    }

    #[test]
    fn user_statements_per_flavor() {
        let native = HASH.as_bytes();
        assert_eq!(
            create_user(MARIADB, "app", "%", "mysql_native_password", native),
            format!("CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED VIA mysql_native_password USING '{HASH}'")
        );
        assert_eq!(
            alter_user(MARIADB, "app", "10.0.%", "ed25519", b"ZIgUREUg5PVg+6Ls"),
            "ALTER USER 'app'@'10.0.%' IDENTIFIED VIA ed25519 USING 'ZIgUREUg5PVg+6Ls'"
        );
        assert_eq!(
            create_user(MYSQL, "app", "%", "mysql_native_password", native),
            format!("CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED WITH mysql_native_password AS '{HASH}'")
        );
        assert_eq!(
            alter_user(MYSQL, "app", "%", "caching_sha2_password", b"$A$005$\x01'\\\xff"),
            "ALTER USER 'app'@'%' IDENTIFIED WITH caching_sha2_password AS 0x2441243030352401275CFF"
        );
        assert_eq!(auth_literal(b""), "''");
        assert_eq!(auth_literal(b"a b"), "0x612062");
    }
}
