//! Table definitions as the engine needs them: columns by position (row
//! events carry no names when `binlog_row_metadata` is MINIMAL, MariaDB's
//! default), each column's kind for value encoding, and the key that orders
//! and chunks the copy.

use std::fmt;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use super::error::{At, MovementError, Result};
use crate::mysql::sql::quote_ident;

/// `schema`.`table`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn new(schema: &str, table: &str) -> TableName {
        TableName { schema: schema.to_string(), table: table.to_string() }
    }

    /// Parses `schema.table`.
    pub fn parse(s: &str) -> Option<TableName> {
        let (schema, table) = s.split_once('.')?;
        (!schema.is_empty() && !table.is_empty() && !table.contains('.')).then(|| TableName::new(schema, table))
    }

    /// The quoted form for statements.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// How a column's values are written as SQL literals and compared.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Integer of `bytes` width. The width matters because row events on
    /// MariaDB do not say whether a column is unsigned: the raw value arrives
    /// signed and is reinterpreted here.
    Int {
        bytes: u8,
        unsigned: bool,
    },
    Float,
    Double,
    Decimal,
    Bit,
    Year,
    Date,
    Time,
    DateTime,
    Timestamp,
    Enum(Vec<String>),
    Set(Vec<String>),
    /// Character data in `charset` (MariaDB's JSON is LONGTEXT and lands here).
    Text {
        charset: String,
    },
    /// Byte strings: BINARY, VARBINARY, BLOBs, geometry.
    Binary,
    /// MySQL's native JSON.
    Json,
}

impl Kind {
    /// Classifies an information_schema `DATA_TYPE` / `COLUMN_TYPE` pair.
    pub fn classify(data_type: &str, column_type: &str, charset: Option<&str>) -> Option<Kind> {
        let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
        let text = |c: Option<&str>| match c {
            Some(cs) if cs != "binary" => Kind::Text { charset: cs.to_string() },
            _ => Kind::Binary,
        };
        Some(match data_type.to_ascii_lowercase().as_str() {
            "tinyint" => Kind::Int { bytes: 1, unsigned },
            "smallint" => Kind::Int { bytes: 2, unsigned },
            "mediumint" => Kind::Int { bytes: 3, unsigned },
            "int" | "integer" => Kind::Int { bytes: 4, unsigned },
            "bigint" => Kind::Int { bytes: 8, unsigned },
            "float" => Kind::Float,
            "double" | "real" | "double precision" => Kind::Double,
            "decimal" | "numeric" => Kind::Decimal,
            "bit" => Kind::Bit,
            "year" => Kind::Year,
            "date" => Kind::Date,
            "time" => Kind::Time,
            "datetime" => Kind::DateTime,
            "timestamp" => Kind::Timestamp,
            "enum" => Kind::Enum(parse_members(column_type)?),
            "set" => Kind::Set(parse_members(column_type)?),
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => text(charset),
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" | "point"
            | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection"
            | "geomcollection" => Kind::Binary,
            "json" => Kind::Json,
            "inet4" | "inet6" | "uuid" => text(Some("latin1")),
            _ => return None,
        })
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Kind::Int { .. } | Kind::Float | Kind::Double | Kind::Decimal | Kind::Year)
    }
}

/// `enum('a','b''c')` → `["a", "b'c"]`.
pub fn parse_members(column_type: &str) -> Option<Vec<String>> {
    let open = column_type.find('(')?;
    let body = &column_type[open + 1..column_type.rfind(')')?];
    let mut members = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(members),
            Some('\'') => {}
            Some(_) => return None,
        }
        let mut member = String::new();
        loop {
            match chars.next()? {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    member.push('\'');
                }
                '\'' => break,
                '\\' => member.push(chars.next()?),
                c => member.push(c),
            }
        }
        members.push(member);
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    /// The full type as declared, e.g. `decimal(10,2) unsigned`.
    pub column_type: String,
    pub nullable: bool,
    /// Generated columns are computed by the target itself; writing them is
    /// an error.
    pub generated: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    pub name: TableName,
    /// In ordinal order, which is the order of values in a row event.
    pub columns: Vec<Column>,
    /// Positions of the columns of the primary key, or of the first unique
    /// key whose columns are all NOT NULL.
    pub key: Vec<usize>,
    /// Estimated rows, from table statistics.
    pub estimated_rows: u64,
}

impl TableSchema {
    pub fn position(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(column))
    }
}

/// One index column as information_schema.STATISTICS lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexColumn {
    pub index: String,
    pub seq: u32,
    pub column: String,
    pub unique: bool,
}

/// The key that orders and chunks the copy: the primary key, else the first
/// unique key (by name) with only NOT NULL columns. A NULL in a "unique" key
/// would let two rows share a key, so such keys cannot identify rows.
pub fn choose_key(columns: &[Column], indexes: &[IndexColumn]) -> Option<Vec<usize>> {
    let mut names: Vec<&str> = indexes.iter().filter(|i| i.unique).map(|i| i.index.as_str()).collect();
    names.sort_by_key(|n| (*n != "PRIMARY", n.to_string()));
    names.dedup();
    for name in names {
        let mut cols: Vec<&IndexColumn> = indexes.iter().filter(|i| i.index == name).collect();
        cols.sort_by_key(|i| i.seq);
        let positions: Option<Vec<usize>> = cols
            .iter()
            .map(|i| columns.iter().position(|c| c.name.eq_ignore_ascii_case(&i.column) && !c.nullable))
            .collect();
        if let Some(p) = positions.filter(|p| !p.is_empty()) {
            return Some(p);
        }
    }
    None
}

/// A column the server computes. MySQL also lists `DEFAULT_GENERATED` in
/// EXTRA for a plain column with an expression default (`DEFAULT
/// CURRENT_TIMESTAMP`): that one holds stored, writable data and must be
/// copied like any other.
fn generated(extra: &str) -> bool {
    let e = extra.to_ascii_uppercase().replace("DEFAULT_GENERATED", "");
    e.contains("GENERATED") || e.contains("VIRTUAL") || e.contains("PERSISTENT") || e.contains("STORED")
}

impl Column {
    /// `n` for a `BINARY(n)` column. Its values are right-padded with 0x00
    /// to `n` bytes when stored, but row events carry them with the
    /// trailing zero bytes stripped.
    pub fn fixed_binary_len(&self) -> Option<usize> {
        if self.kind != Kind::Binary {
            return None;
        }
        let t = self.column_type.trim().to_ascii_lowercase();
        t.strip_prefix("binary(")?.strip_suffix(')')?.trim().parse().ok()
    }
}

/// One of a table's own foreign keys, with its referential actions.
#[derive(Clone, Debug, PartialEq)]
pub struct ForeignKey {
    pub name: String,
    pub on_delete: String,
    pub on_update: String,
    /// The table it points at.
    pub parent: TableName,
}

impl ForeignKey {
    /// `CASCADE`, `SET NULL` or `SET DEFAULT` on either side: InnoDB makes
    /// those changes itself, and they never reach the row binlog, so no
    /// change stream can follow them.
    pub fn acts(&self) -> bool {
        let acts = |rule: &str| !matches!(rule, "RESTRICT" | "NO ACTION");
        acts(&self.on_delete) || acts(&self.on_update)
    }
}

impl fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (ON DELETE {}, ON UPDATE {})", self.name, self.on_delete, self.on_update)
    }
}

/// The foreign keys `table` itself declares (those of a child table).
pub async fn foreign_keys(conn: &mut Conn, endpoint: &str, table: &TableName) -> Result<Vec<ForeignKey>> {
    let rows: Vec<(String, String, String, String, String)> = conn
        .exec(
            "SELECT CONSTRAINT_NAME, DELETE_RULE, UPDATE_RULE, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME \
             FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? ORDER BY CONSTRAINT_NAME",
            (&table.schema, &table.table),
        )
        .await
        .at(endpoint)?;
    Ok(rows
        .into_iter()
        .map(|(name, on_delete, on_update, schema, parent)| ForeignKey {
            name,
            on_delete,
            on_update,
            parent: TableName::new(&schema, &parent),
        })
        .collect())
}

/// What the names of the fence's own triggers (`movement/fence.rs`) start
/// with: no application's.
pub const FENCE_TRIGGER_PREFIX: &str = "switchyard_fence_";

/// Foreign keys of other tables that point at `table` (its children), each
/// with the child it belongs to.
pub async fn referencing_foreign_keys(
    conn: &mut Conn,
    endpoint: &str,
    table: &TableName,
) -> Result<Vec<(TableName, String)>> {
    let rows: Vec<(String, String, String)> = conn
        .exec(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE REFERENCED_TABLE_NAME = ? AND UNIQUE_CONSTRAINT_SCHEMA = ? ORDER BY 1, 2, 3",
            (&table.table, &table.schema),
        )
        .await
        .at(endpoint)?;
    Ok(rows.into_iter().map(|(schema, child, name)| (TableName::new(&schema, &child), name)).collect())
}

/// Triggers anywhere on the server whose body names `table` (by its bare
/// name, as a word: a trigger may write it unqualified), each as
/// `schema.trigger on schema.table`. A word match may name a trigger that
/// only mentions a column of that name; that errs on the side of refusing.
pub async fn triggers_naming(conn: &mut Conn, endpoint: &str, table: &TableName) -> Result<Vec<(TableName, String)>> {
    let rows: Vec<(String, String, String, String)> = conn
        .query(
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT FROM information_schema.TRIGGERS \
             ORDER BY 1, 2",
        )
        .await
        .at(endpoint)?;
    Ok(rows
        .into_iter()
        .filter(|(_, name, _, _)| !name.starts_with(FENCE_TRIGGER_PREFIX))
        .filter(|(_, _, _, body)| names_word(body, &table.table))
        .map(|(schema, name, on, _)| (TableName::new(&schema, &on), name))
        .collect())
}

/// Whether `text` holds `word` between non-identifier characters, ignoring
/// case and backticks.
fn names_word(text: &str, word: &str) -> bool {
    let (text, word) = (text.to_lowercase(), word.to_lowercase());
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    text.match_indices(&word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Names of the triggers on `table` that applications made (the fence's own,
/// `switchyard_fence_*`, are not theirs). A moved table's triggers would not
/// follow it to a new table or server, and where they did they would fire a
/// second time on the rows the engine writes.
pub async fn user_triggers(conn: &mut Conn, endpoint: &str, table: &TableName) -> Result<Vec<String>> {
    let names: Vec<String> = conn
        .exec(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
             WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME",
            (&table.schema, &table.table),
        )
        .await
        .at(endpoint)?;
    Ok(names.into_iter().filter(|n| !n.starts_with(FENCE_TRIGGER_PREFIX)).collect())
}

/// Reads a table's definition from information_schema.
pub async fn load(conn: &mut Conn, endpoint: &str, name: &TableName) -> Result<TableSchema> {
    type ColumnRow = (String, String, String, String, Option<String>, String);
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&name.schema, &name.table),
        )
        .await
        .at(endpoint)?;
    if rows.is_empty() {
        return Err(MovementError::Table { table: name.to_string(), reason: format!("does not exist on {endpoint}") });
    }
    let mut columns = Vec::with_capacity(rows.len());
    for (col, data_type, column_type, nullable, charset, extra) in rows {
        let kind =
            Kind::classify(&data_type, &column_type, charset.as_deref()).ok_or_else(|| MovementError::Table {
                table: name.to_string(),
                reason: format!("column {col} has type {column_type}, which the engine cannot move"),
            })?;
        columns.push(Column {
            name: col,
            kind,
            column_type,
            nullable: nullable == "YES",
            generated: generated(&extra),
        });
    }
    let indexes: Vec<(String, u32, String, i64)> = conn
        .exec(
            "SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&name.schema, &name.table),
        )
        .await
        .at(endpoint)?;
    let indexes: Vec<IndexColumn> = indexes
        .into_iter()
        .map(|(index, seq, column, non_unique)| IndexColumn { index, seq, column, unique: non_unique == 0 })
        .collect();
    let key = choose_key(&columns, &indexes).ok_or_else(|| MovementError::Table {
        table: name.to_string(),
        reason: "has no primary key and no unique key on NOT NULL columns, so rows cannot be copied in \
                 order or matched to row events; add a primary key first"
            .into(),
    })?;
    let estimated_rows: Option<u64> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&name.schema, &name.table),
        )
        .await
        .at(endpoint)?;
    Ok(TableSchema { name: name.clone(), columns, key, estimated_rows: estimated_rows.unwrap_or(0) })
}

/// `SHOW CREATE TABLE`'s statement for `table` (the same name or another),
/// schema-qualified and idempotent. None if it is not a table's.
pub fn create_statement(table: &TableName, show_create: &str) -> Option<String> {
    let rest = show_create.trim_start().strip_prefix("CREATE TABLE ")?;
    // The name as SHOW CREATE TABLE prints it: backquoted, unqualified.
    let name_end = if rest.starts_with('`') {
        let mut i = 1;
        let b = rest.as_bytes();
        loop {
            match b.get(i) {
                Some(b'`') if b.get(i + 1) == Some(&b'`') => i += 2,
                Some(b'`') => break i + 1,
                Some(_) => i += 1,
                None => return None,
            }
        }
    } else {
        rest.find(' ')?
    };
    Some(format!("CREATE TABLE IF NOT EXISTS {}{}", table.sql(), &rest[name_end..]))
}

#[cfg(test)]
pub(crate) mod tests {

    #[test]
    fn trigger_bodies_name_tables_as_words() {
        let body = "INSERT INTO balance_log (account_id, delta) VALUES (NEW.account_id, NEW.cents - OLD.cents)";
        assert!(names_word(body, "balance_log"));
        assert!(names_word("insert into `zoo`.`Balance_Log` values (1)", "balance_log"));
        assert!(!names_word(body, "balance"), "a prefix of a longer name is not the table");
        assert!(!names_word(body, "log"));
        assert!(names_word("UPDATE 客户 SET x = 1", "客户"));
    }

    use super::*;

    #[test]
    fn create_statements_are_idempotent_and_qualified() {
        let t = TableName::new("shop", "odd`name");
        let ddl = "CREATE TABLE `odd``name` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB";
        assert_eq!(
            create_statement(&t, ddl).unwrap(),
            "CREATE TABLE IF NOT EXISTS `shop`.`odd``name` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"
        );
        assert_eq!(create_statement(&t, "CREATE VIEW v AS SELECT 1"), None);
    }

    #[test]
    fn shard_tables_take_the_old_definition_under_their_own_name() {
        let ddl = "CREATE TABLE `ord``ers` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB";
        assert_eq!(
            create_statement(&TableName::new("shop", "orders_1"), ddl).unwrap(),
            "CREATE TABLE IF NOT EXISTS `shop`.`orders_1` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"
        );
        assert_eq!(create_statement(&TableName::new("a", "b"), "CREATE VIEW `v` AS SELECT 1"), None);
    }

    pub fn column(name: &str, kind: Kind) -> Column {
        Column { name: name.into(), kind, column_type: String::new(), nullable: false, generated: false }
    }

    #[test]
    fn foreign_keys_act_unless_they_only_restrict() {
        let fk = |d: &str, u: &str| ForeignKey {
            name: "fk".into(),
            on_delete: d.into(),
            on_update: u.into(),
            parent: TableName::new("shop", "orders"),
        };
        assert!(!fk("RESTRICT", "NO ACTION").acts());
        assert!(fk("CASCADE", "RESTRICT").acts());
        assert!(fk("NO ACTION", "SET NULL").acts());
        assert!(fk("SET DEFAULT", "NO ACTION").acts());
        assert_eq!(fk("CASCADE", "RESTRICT").to_string(), "fk (ON DELETE CASCADE, ON UPDATE RESTRICT)");
    }

    #[test]
    fn default_generated_columns_hold_data() {
        assert!(!generated("DEFAULT_GENERATED"));
        assert!(!generated("DEFAULT_GENERATED on update CURRENT_TIMESTAMP"));
        assert!(!generated("auto_increment"));
        assert!(!generated(""));
        assert!(generated("VIRTUAL GENERATED"));
        assert!(generated("STORED GENERATED"));
        assert!(generated("PERSISTENT GENERATED"));
    }

    #[test]
    fn fixed_binary_length_is_read_from_the_declared_type() {
        let mut c = column("k", Kind::Binary);
        c.column_type = "binary(16)".into();
        assert_eq!(c.fixed_binary_len(), Some(16));
        c.column_type = "varbinary(16)".into();
        assert_eq!(c.fixed_binary_len(), None);
        c.column_type = "blob".into();
        assert_eq!(c.fixed_binary_len(), None);
        let mut t = column("k", Kind::Text { charset: "utf8mb4".into() });
        t.column_type = "char(16)".into();
        assert_eq!(t.fixed_binary_len(), None);
    }

    #[test]
    fn parses_enum_members() {
        assert_eq!(parse_members("enum('a','b''c','d,e')").unwrap(), vec!["a", "b'c", "d,e"]);
        assert_eq!(parse_members("set('x', 'y')").unwrap(), vec!["x", "y"]);
        assert_eq!(parse_members("enum()").unwrap(), Vec::<String>::new());
        assert_eq!(parse_members("enum(a)"), None);
    }

    #[test]
    fn classifies_types() {
        assert_eq!(Kind::classify("int", "int(10) unsigned", None), Some(Kind::Int { bytes: 4, unsigned: true }));
        assert_eq!(
            Kind::classify("varchar", "varchar(10)", Some("utf8mb4")),
            Some(Kind::Text { charset: "utf8mb4".into() })
        );
        assert_eq!(
            Kind::classify("longtext", "longtext", Some("utf8mb4")),
            Some(Kind::Text { charset: "utf8mb4".into() })
        );
        assert_eq!(Kind::classify("varbinary", "varbinary(10)", None), Some(Kind::Binary));
        assert_eq!(
            Kind::classify("enum", "enum('a','b')", Some("utf8mb4")),
            Some(Kind::Enum(vec!["a".into(), "b".into()]))
        );
        assert_eq!(Kind::classify("vector", "vector(3)", None), None);
    }

    #[test]
    fn primary_key_wins_then_not_null_unique() {
        let mut cols = vec![column("id", Kind::Int { bytes: 8, unsigned: false }), column("email", Kind::Binary)];
        let idx = |index: &str, seq, column: &str, unique| IndexColumn {
            index: index.into(),
            seq,
            column: column.into(),
            unique,
        };
        let both = [idx("uk_email", 1, "email", true), idx("PRIMARY", 1, "id", true)];
        assert_eq!(choose_key(&cols, &both), Some(vec![0]));
        assert_eq!(choose_key(&cols, &both[..1]), Some(vec![1]));
        cols[1].nullable = true;
        assert_eq!(choose_key(&cols, &both[..1]), None, "a nullable unique key cannot identify rows");
        assert_eq!(choose_key(&cols, &[idx("k", 1, "id", false)]), None, "a non-unique index is no key");
        let composite = [idx("PRIMARY", 2, "id", true), idx("PRIMARY", 1, "email", true)];
        cols[1].nullable = false;
        assert_eq!(choose_key(&cols, &composite), Some(vec![1, 0]));
    }

    #[test]
    fn table_names() {
        assert_eq!(TableName::parse("shop.orders"), Some(TableName::new("shop", "orders")));
        assert_eq!(TableName::parse("orders"), None);
        assert_eq!(TableName::new("a`b", "c").sql(), "`a``b`.`c`");
    }
}
