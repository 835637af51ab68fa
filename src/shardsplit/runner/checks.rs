//! The checks against the servers before anything is created: the key, the
//! rule against the key's type, the old table's keys, and the shard tables
//! that may already exist.

use super::*;
use crate::cluster::access::Unavailable;
use crate::mysql::sql::quote as lit;
use crate::shardsplit::api::Algorithm;

/// Why a split stays Pending.
pub enum Preflight {
    /// The spec cannot work against these tables as they are.
    Invalid(String),
    /// Something may pass by itself (a server unreachable, no primary yet).
    Waiting(String),
}

impl From<WorkError> for Preflight {
    fn from(e: WorkError) -> Self {
        match e {
            WorkError::Unavailable(u) => u.into(),
            other => Preflight::Waiting(other.to_string()),
        }
    }
}

impl From<Unavailable> for Preflight {
    fn from(u: Unavailable) -> Self {
        match u {
            Unavailable::NoCluster(_) | Unavailable::Credentials { .. } => Preflight::Invalid(u.to_string()),
            other => Preflight::Waiting(other.to_string()),
        }
    }
}

/// What the engine's binlog reader lacks on a server, if anything.
async fn binlog_ready(conn: &mut Conn, name: &str, flavor: Flavor) -> Result<Option<String>, WorkError> {
    match prereq::verify(conn, name, flavor, MIN_BINLOG_RETENTION).await {
        Ok(()) => Ok(None),
        Err(e) if e.is_permanent() => Ok(Some(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// name, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE.
type ColumnRow = (String, String, String, String);

async fn columns(conn: &mut Conn, t: &TableName) -> Result<Vec<ColumnRow>, WorkError> {
    conn.query(format!(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
        lit(&t.schema),
        lit(&t.table)
    ))
    .await
    .doing(|| format!("reading the columns of {t}"))
}

/// What is wrong with the key column for `algorithm`, if anything.
pub fn key_problem(cols: &[ColumnRow], key: &str, algorithm: Algorithm) -> Option<String> {
    let Some((_, data_type, column_type, nullable)) = cols.iter().find(|c| c.0.eq_ignore_ascii_case(key)) else {
        return Some(format!("the table has no column {key}"));
    };
    if nullable == "YES" {
        return Some(format!("the key column {key} is nullable; a row with NULL would have no shard"));
    }
    let integer = plan::integer_max(column_type).is_some();
    let string = matches!(data_type.to_ascii_lowercase().as_str(), "char" | "varchar" | "binary" | "varbinary");
    match algorithm {
        Algorithm::Hash if !(integer || string) => {
            Some(format!("hash needs an integer or (var)char/(var)binary key; {key} is {column_type}"))
        }
        Algorithm::Mod | Algorithm::Range if !integer => {
            Some(format!("{} needs an integer key; {key} is {column_type}", algorithm_name(algorithm)))
        }
        _ => None,
    }
}

fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Hash => "hash",
        Algorithm::Mod => "mod",
        Algorithm::Range => "range",
    }
}

impl Runner {
    pub(super) async fn checks(&mut self) -> Result<(), Preflight> {
        let spec = self.res.obj.spec.clone();
        let mut problems = Vec::new();
        if let Err(e) = plan::router(&spec) {
            problems.push(format!("spec.rule.ranges: {e}"));
        }
        let old = self.old_table();
        let (mut src, flavor) = self.session(&spec.source.cluster).await?;
        let cols = columns(&mut src, &old).await?;
        if cols.is_empty() {
            let _ = src.disconnect().await;
            return Err(Preflight::Invalid(format!("{old} does not exist on {}", spec.source.cluster)));
        }
        problems.extend(key_problem(&cols, &spec.rule.column, spec.rule.algorithm));
        let primary: Option<u64> = src
            .query_first(format!(
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} AND INDEX_NAME = 'PRIMARY'",
                lit(&old.schema),
                lit(&old.table)
            ))
            .await
            .doing(|| "reading the primary key".into())?;
        if primary.unwrap_or(0) == 0 {
            problems.push(format!("{old} has no primary key; rows could not be found again in the shards"));
        }
        let fks: Option<u64> = src
            .query_first(format!(
                "SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE WHERE REFERENCED_TABLE_NAME IS NOT NULL AND \
                 ((TABLE_SCHEMA = {s} AND TABLE_NAME = {t}) OR (REFERENCED_TABLE_SCHEMA = {s} AND REFERENCED_TABLE_NAME = {t}))",
                s = lit(&old.schema),
                t = lit(&old.table)
            ))
            .await
            .doing(|| "reading foreign keys".into())?;
        if fks.unwrap_or(0) > 0 {
            problems.push(format!("{old} has foreign keys; shards cannot keep them"));
        }
        let triggers =
            crate::movement::schema::user_triggers(&mut src, "source", &old).await.map_err(WorkError::from)?;
        if !triggers.is_empty() {
            problems.push(format!("{old} has triggers ({}); the shards would not run them", triggers.join(", ")));
        }
        for (on, trigger) in
            crate::movement::schema::triggers_naming(&mut src, "source", &old).await.map_err(WorkError::from)?
        {
            if on != old {
                problems.push(format!(
                    "{old} is named by trigger {trigger} on {on}; what it writes would hit the fence in dual-write"
                ));
            }
        }
        problems.extend(binlog_ready(&mut src, &spec.source.cluster, flavor).await?);
        let _ = src.disconnect().await;

        for cluster in self.shard_clusters() {
            let (mut conn, flavor) = self.session(&cluster).await?;
            if let Some(p) = binlog_ready(&mut conn, &cluster, flavor).await? {
                problems.push(format!("the reverse sync reads {cluster}'s binary log: {p}"));
            }
            for shard in self.shards_on(&cluster) {
                let existing = columns(&mut conn, &shard).await?;
                if existing.is_empty() {
                    continue;
                }
                let same = existing.len() == cols.len()
                    && existing.iter().zip(&cols).all(|(a, b)| a.0 == b.0 && a.2.eq_ignore_ascii_case(&b.2));
                if !same {
                    problems.push(format!("{shard} already exists on {cluster} with a different definition"));
                    continue;
                }
                let row: Option<u8> = conn
                    .query_first(format!("SELECT 1 FROM {} LIMIT 1", shard.sql()))
                    .await
                    .doing(|| format!("reading {shard}"))?;
                if row.is_some() {
                    problems.push(format!("{shard} already exists on {cluster} and holds rows"));
                }
            }
            let _ = conn.disconnect().await;
        }
        if problems.is_empty() { Ok(()) } else { Err(Preflight::Invalid(problems.join("; "))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: &str, column_type: &str, nullable: bool) -> ColumnRow {
        (name.into(), data_type.into(), column_type.into(), if nullable { "YES" } else { "NO" }.into())
    }

    #[test]
    fn the_key_must_exist_be_not_null_and_fit_the_algorithm() {
        let cols = vec![
            col("id", "bigint", "bigint(20)", false),
            col("email", "varchar", "varchar(100)", false),
            col("note", "varchar", "varchar(10)", true),
            col("at", "datetime", "datetime", false),
        ];
        assert_eq!(key_problem(&cols, "id", Algorithm::Mod), None);
        assert_eq!(key_problem(&cols, "email", Algorithm::Hash), None);
        assert!(key_problem(&cols, "nope", Algorithm::Hash).unwrap().contains("no column nope"));
        assert!(key_problem(&cols, "note", Algorithm::Hash).unwrap().contains("nullable"));
        assert!(key_problem(&cols, "email", Algorithm::Range).unwrap().contains("range needs an integer"));
        assert!(key_problem(&cols, "at", Algorithm::Hash).unwrap().contains("hash needs"));
    }
}
