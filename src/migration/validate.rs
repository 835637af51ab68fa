//! Checks of a Migration spec beyond its schema.

use std::collections::BTreeSet;

use super::api::MigrationSpec;
use crate::validation::{SpecErrors, is_system_schema};

pub fn validate(spec: &MigrationSpec) -> Result<(), SpecErrors> {
    let mut e = SpecErrors::new();
    match (&spec.source.cluster, &spec.source.external) {
        (Some(_), Some(_)) => e.add("spec.source", "set only one of cluster and external"),
        (None, None) => e.add("spec.source", "is missing: set cluster or external"),
        (Some(cluster), None) => {
            e.object_name("spec.source.cluster", cluster);
            if *cluster == spec.target.cluster {
                e.add("spec.target.cluster", "must differ from the source cluster");
            }
        }
        (None, Some(ext)) => {
            if ext.host.trim().is_empty() || ext.host.contains(char::is_whitespace) {
                e.add("spec.source.external.host", format!("{:?} is not a host name or address", ext.host));
            }
            if !(1..=65535).contains(&ext.port) {
                e.add("spec.source.external.port", format!("{} is not a TCP port", ext.port));
            }
            e.object_name("spec.source.external.credentialsSecret", &ext.credentials_secret);
        }
    }
    if spec.target.cluster.is_empty() {
        e.add("spec.target.cluster", "is missing");
    } else {
        e.object_name("spec.target.cluster", &spec.target.cluster);
    }
    if spec.databases.is_empty() {
        e.add("spec.databases", "list at least one database");
    }
    let mut seen = BTreeSet::new();
    for (i, db) in spec.databases.iter().enumerate() {
        let field = format!("spec.databases[{i}]");
        e.mysql_identifier(&field, db);
        if is_system_schema(db) {
            e.add(&field, format!("{db:?} is a system schema and cannot be migrated"));
        }
        if !seen.insert(db.as_str()) {
            e.add(&field, format!("{db:?} is listed twice"));
        }
    }
    if let Some(filter) = &spec.tables {
        for (list, entries) in [("include", &filter.include), ("exclude", &filter.exclude)] {
            for (i, entry) in entries.iter().enumerate() {
                let field = format!("spec.tables.{list}[{i}]");
                match entry.split_once('.') {
                    Some((db, table)) => {
                        e.mysql_identifier(&field, db);
                        e.mysql_identifier(&field, table);
                        if !spec.databases.iter().any(|d| d == db) {
                            e.add(&field, format!("database {db:?} is not in spec.databases"));
                        }
                    }
                    None => e.mysql_identifier(&field, entry),
                }
            }
        }
    }
    for (i, user) in spec.accounts.users.iter().enumerate() {
        let field = format!("spec.accounts.users[{i}]");
        match parse_account(user) {
            Ok((name, _)) if name.eq_ignore_ascii_case("root") => {
                e.add(&field, "root is managed by the target cluster and is never migrated")
            }
            Ok(_) => {}
            Err(why) => e.add(&field, why),
        }
    }
    if let Some(ds) = &spec.switch.data_source {
        if let Some(svc) = &ds.service {
            e.object_name("spec.switch.dataSource.service", svc);
            if svc.contains('.') {
                e.add("spec.switch.dataSource.service", "a Service name cannot contain '.'");
            }
        }
        if let Some(cm) = &ds.config_map {
            e.object_name("spec.switch.dataSource.configMap", cm);
        }
    }
    e.into_result()
}

/// Parses `user@host` (the last `@` separates, as user names may hold one).
pub fn parse_account(account: &str) -> Result<(&str, &str), String> {
    let (user, host) = account.rsplit_once('@').ok_or_else(|| format!("{account:?} must be user@host, e.g. app@%"))?;
    if user.is_empty() || user.len() > 80 || host.is_empty() || host.len() > 255 {
        return Err(format!("{account:?} must be user@host with a user of 1-80 and a host of 1-255 characters"));
    }
    if account.contains(['\'', '`', '\0', '\\']) {
        return Err(format!("{account:?} must not contain quotes or backslashes"));
    }
    Ok((user, host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::api::*;

    fn spec() -> MigrationSpec {
        MigrationSpec {
            source: MigrationSource {
                cluster: None,
                external: Some(ExternalServer {
                    host: "10.0.0.5".into(),
                    port: 3306,
                    credentials_secret: "legacy".into(),
                }),
            },
            target: MigrationTarget { cluster: "db".into() },
            databases: vec!["shop".into()],
            tables: None,
            incremental: Incremental::default(),
            accounts: Accounts { users: vec!["app@%".into()] },
            switch: SwitchPolicy::default(),
            postpone_completion: true,
            throttle: Default::default(),
            cancel: false,
        }
    }

    #[test]
    fn valid_spec() {
        assert_eq!(validate(&spec()), Ok(()));
    }

    #[test]
    fn source_must_be_exactly_one() {
        let mut s = spec();
        s.source.external = None;
        assert!(validate(&s).unwrap_err().to_string().contains("spec.source: is missing"));
        s.source.cluster = Some("db".into());
        assert!(validate(&s).unwrap_err().to_string().contains("must differ from the source"));
    }

    #[test]
    fn databases() {
        let mut s = spec();
        s.databases = vec!["shop".into(), "shop".into(), "mysql".into()];
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.contains("listed twice") && err.contains("system schema"), "{err}");
        s.databases.clear();
        assert!(validate(&s).is_err());
    }

    #[test]
    fn table_filters_name_migrated_databases() {
        let mut s = spec();
        s.tables =
            Some(TableFilter { include: vec!["shop.orders".into(), "items".into()], exclude: vec!["other.x".into()] });
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.contains("spec.tables.exclude[0]: database \"other\" is not in spec.databases"), "{err}");
    }

    #[test]
    fn accounts() {
        assert_eq!(parse_account("app@%"), Ok(("app", "%")));
        assert_eq!(parse_account("a@b@10.0.%"), Ok(("a@b", "10.0.%")));
        assert!(parse_account("app").is_err());
        assert!(parse_account("app'@%").is_err());
        let mut s = spec();
        s.accounts.users = vec!["root@%".into()];
        assert!(validate(&s).unwrap_err().to_string().contains("root is managed"));
    }
}
