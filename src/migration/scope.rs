//! Which tables a migration moves, the pre-flight checks on them, and their
//! creation on the target. Tables are resolved once, when the migration
//! starts, and kept in `status.tables`.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::api::TableFilter;
use crate::movement::{MovementError, TableName, indexes, schema};
use crate::mysql::sql::{quote, quote_ident};
use crate::work::error::{Doing, WorkError};

/// Whether `database.table` is in scope. An entry without a database matches
/// the table in every migrated database; exclude wins over include.
pub fn in_scope(database: &str, table: &str, filter: Option<&TableFilter>) -> bool {
    let Some(f) = filter else { return true };
    let matches = |entry: &String| match entry.split_once('.') {
        Some((d, t)) => d == database && t == table,
        None => entry == table,
    };
    if f.exclude.iter().any(matches) {
        return false;
    }
    f.include.is_empty() || f.include.iter().any(matches)
}

/// The base tables of `databases` on the source that the filter selects.
pub async fn resolve(
    conn: &mut Conn,
    databases: &[String],
    filter: Option<&TableFilter>,
) -> Result<Vec<TableName>, WorkError> {
    let mut out = Vec::new();
    for db in databases {
        let names: Vec<String> = conn
            .exec(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' \
                 ORDER BY TABLE_NAME",
                (db,),
            )
            .await
            .doing(|| format!("listing the tables of {db} on the source"))?;
        out.extend(names.into_iter().filter(|t| in_scope(db, t, filter)).map(|t| TableName::new(db, &t)));
    }
    Ok(out)
}

/// Databases in `databases` that do not exist on the source.
pub async fn missing_databases(conn: &mut Conn, databases: &[String]) -> Result<Vec<String>, WorkError> {
    let mut missing = Vec::new();
    for db in databases {
        let found: Option<String> = conn
            .exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,))
            .await
            .doing(|| "listing the source's databases".into())?;
        if found.is_none() {
            missing.push(db.clone());
        }
    }
    Ok(missing)
}

/// Tables the engine cannot copy: no primary key and no unique key on NOT
/// NULL columns (rows could not be found again by key), or a column type it
/// does not handle. Each with why.
pub async fn uncopyable(conn: &mut Conn, tables: &[TableName]) -> Result<Vec<String>, WorkError> {
    let mut out = Vec::new();
    for t in tables {
        match schema::load(conn, "source", t).await {
            Ok(_) => {}
            Err(MovementError::Table { table, reason }) => out.push(format!("{table} {reason}")),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Foreign keys of moved tables that act on their own ([`ForeignKey::acts`]):
/// the engine's sessions on the target run with `foreign_key_checks = 0`,
/// so the target would keep the child rows the source cascaded away.
pub async fn acting_foreign_keys(conn: &mut Conn, tables: &[TableName]) -> Result<Vec<String>, WorkError> {
    let mut out = Vec::new();
    for t in tables {
        let fks = schema::foreign_keys(conn, "source", t).await?;
        out.extend(fks.iter().filter(|fk| fk.acts()).map(|fk| format!("{t} ({fk})")));
    }
    Ok(out)
}

/// Moved tables with triggers of the applications': the target would have
/// none of them, so what they write would stop after the switch.
pub async fn triggered(conn: &mut Conn, tables: &[TableName]) -> Result<Vec<String>, WorkError> {
    let mut out = Vec::new();
    for t in tables {
        let names = schema::user_triggers(conn, "source", t).await?;
        if !names.is_empty() {
            out.push(format!("{t} ({})", names.join(", ")));
        }
    }
    Ok(out)
}

/// Tables split from the ones they depend on: children whose foreign keys
/// point at a moved table (they would check new rows against the stale
/// copy the source keeps), moved children whose parent stays (the target
/// would refuse their new rows, having no parent table), and triggers on
/// other tables that write a moved one (they would hit the fence).
pub async fn left_behind(conn: &mut Conn, tables: &[TableName]) -> Result<Vec<String>, WorkError> {
    let mut out = Vec::new();
    for t in tables {
        for fk in schema::foreign_keys(conn, "source", t).await? {
            if !tables.contains(&fk.parent) {
                out.push(format!("{t} references {} ({}), which is not moved", fk.parent, fk.name));
            }
        }
        for (child, fk) in schema::referencing_foreign_keys(conn, "source", t).await? {
            if !tables.contains(&child) {
                out.push(format!("{t} is referenced by {child} ({fk})"));
            }
        }
        for (on, trigger) in schema::triggers_naming(conn, "source", t).await? {
            if !tables.contains(&on) {
                out.push(format!("{t} is named by trigger {trigger} on {on}"));
            }
        }
    }
    Ok(out)
}

/// Moved tables that already exist on the target.
pub async fn conflicts(target: &mut Conn, tables: &[TableName]) -> Result<Vec<String>, WorkError> {
    let mut out = Vec::new();
    for t in tables {
        let found: Option<String> = target
            .exec_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&t.schema, &t.table),
            )
            .await
            .doing(|| "listing the target's tables".into())?;
        if found.is_some() {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// Creates the moved databases and tables on the target as the source
/// defines them. Idempotent: what exists is left as it is.
pub async fn create_on_target(source: &mut Conn, target: &mut Conn, tables: &[TableName]) -> Result<(), WorkError> {
    // Foreign keys may name tables created later in this loop.
    target.query_drop("SET SESSION foreign_key_checks = 0").await.doing(|| "preparing the target session".into())?;
    let mut done_dbs: Vec<&str> = Vec::new();
    for t in tables {
        if !done_dbs.contains(&t.schema.as_str()) {
            let charset: Option<(String, String)> = source
                .exec_first(
                    "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
                     WHERE SCHEMA_NAME = ?",
                    (&t.schema,),
                )
                .await
                .doing(|| format!("reading database {}", t.schema))?;
            let mut create = format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&t.schema));
            if let Some((cs, coll)) = charset {
                create.push_str(&format!(" CHARACTER SET {} COLLATE {}", quote(&cs), quote(&coll)));
            }
            target.query_drop(create).await.doing(|| format!("creating database {} on the target", t.schema))?;
            done_dbs.push(&t.schema);
        }
        let existed = !conflicts(target, std::slice::from_ref(t)).await?.is_empty();
        let definition = show_create(source, t).await?;
        let ddl = schema::create_statement(t, &definition)
            .ok_or_else(|| WorkError::Inconsistent(format!("SHOW CREATE TABLE {t} returned no table definition")))?;
        target.query_drop(ddl).await.doing(|| format!("creating {t} on the target"))?;
        // A new table is filled faster without its secondary indexes; they
        // are built after the copy (`restore_indexes`). An index a foreign
        // key needs cannot be dropped, so such tables keep theirs.
        if !existed && !definition.contains("FOREIGN KEY") {
            indexes::defer_indexes(target, t).await?;
        }
    }
    Ok(())
}

async fn show_create(conn: &mut Conn, t: &TableName) -> Result<String, WorkError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {}", t.sql()))
        .await
        .doing(|| format!("reading the definition of {t}"))?;
    row.map(|(_, ddl)| ddl).ok_or_else(|| WorkError::Inconsistent(format!("SHOW CREATE TABLE {t} returned nothing")))
}

/// Builds on the target every secondary index of the source's definition it
/// lacks (those left out for the copy). The source's definition is the
/// record, so nothing about the deferral needs to be kept in status.
pub async fn restore_indexes(source: &mut Conn, target: &mut Conn, tables: &[TableName]) -> Result<(), WorkError> {
    for t in tables {
        let definition = show_create(source, t).await?;
        let defs: Vec<String> = indexes::deferrable_indexes(&definition).into_iter().map(|(_, d)| d).collect();
        if !defs.is_empty() {
            indexes::restore_indexes(target, t, &defs).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TableFilter {
        TableFilter {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn filters() {
        assert!(in_scope("shop", "orders", None));
        let f = filter(&[], &["audit", "shop.tmp"]);
        assert!(in_scope("shop", "orders", Some(&f)));
        assert!(!in_scope("shop", "audit", Some(&f)) && !in_scope("crm", "audit", Some(&f)));
        assert!(!in_scope("shop", "tmp", Some(&f)) && in_scope("crm", "tmp", Some(&f)));
        let f = filter(&["shop.orders", "items"], &["crm.items"]);
        assert!(in_scope("shop", "orders", Some(&f)) && !in_scope("crm", "orders", Some(&f)));
        assert!(in_scope("shop", "items", Some(&f)) && !in_scope("crm", "items", Some(&f)), "exclude wins");
    }
}
