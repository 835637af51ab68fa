//! Reading changes from the source's binary log: a replica connection from
//! a file and offset, row events decoded into full row images of the moved
//! tables, and transaction boundaries for checkpoints.
//!
//! The reader fails closed. An event it cannot decode (MariaDB's compressed
//! events, for one) stops it, because skipping it would lose changes
//! silently. So does a statement that changes a moved table's definition.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Value};

use super::checkpoint::BinlogPosition;
use super::endpoint::Endpoint;
use super::error::{At, MovementError, Result};
use super::schema::{Column, Kind, TableName};
use crate::mysql::Flavor;

/// One row change, as full source rows (every column, in ordinal order).
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Insert(Vec<Value>),
    Update(Vec<Value>, Vec<Value>),
    Delete(Vec<Value>),
}

/// What the reader hands the applier.
#[derive(Debug)]
pub enum Item {
    /// Changes to the moved table `route`.
    Rows { route: usize, changes: Vec<Change> },
    /// A transaction (or a statement outside one) ended here: everything
    /// before this position has been handed over.
    Boundary(BinlogPosition),
    /// Nothing arrived for a while: the reader is at the end of the log.
    Idle,
}

/// How the reader treats each event type (by its raw number, since MariaDB's
/// own types are unknown to the decoder).
#[derive(Debug, PartialEq)]
pub enum Handling {
    Decode,
    MariaDbGtid,
    Ignore,
    /// Cannot be decoded: stop.
    Refuse(&'static str),
}

pub fn handling(event_type: u8) -> Handling {
    match event_type {
        0x02 | 0x04 | 0x0f | 0x10 | 0x13 | 0x17..=0x19 | 0x1e..=0x20 | 0x21 | 0x26 | 0x27 => Handling::Decode,
        0xa2 => Handling::MariaDbGtid,
        // STOP, INTVAR, RAND, USER_VAR (statement context only), HEARTBEAT,
        // IGNORABLE, ROWS_QUERY, anonymous GTID, previous GTIDs, group
        // replication context, the transaction payload wrapper (its events
        // arrive decompressed), and MariaDB's annotate, binlog checkpoint,
        // GTID list and start-encryption events.
        0x03 | 0x05 | 0x0d | 0x0e | 0x1b | 0x1c | 0x1d | 0x22..=0x25 | 0x28 | 0xa0 | 0xa1 | 0xa3 | 0xa4 => {
            Handling::Ignore
        }
        0xa5 => Handling::Refuse("a compressed query event (log_bin_compress=ON)"),
        0xa6..=0xab => Handling::Refuse("a compressed row event (log_bin_compress=ON)"),
        0x06..=0x0c | 0x11 | 0x12 | 0x14..=0x16 => Handling::Refuse("a legacy statement or LOAD DATA event"),
        _ => Handling::Refuse("an event type this reader does not know"),
    }
}

/// MariaDB's GTID event: sequence number (8 bytes), domain (4 bytes), flags.
/// The server id comes from the event header.
pub fn mariadb_gtid(data: &[u8], server_id: u32) -> Option<String> {
    let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    Some(format!("{domain}-{server_id}-{seq}"))
}

/// What a query event means for the stream.
#[derive(Debug, PartialEq)]
pub enum Statement {
    Begin,
    /// COMMIT, or ROLLBACK after non-transactional changes were logged.
    End,
    /// A statement that names a moved table.
    TouchesMoved(String),
    Other,
}

pub fn classify(default_schema: &str, query: &str, moved: &[TableName]) -> Statement {
    let q = query.trim().trim_end_matches(';').trim();
    let upper: String = q.chars().take(16).collect::<String>().to_ascii_uppercase();
    if upper == "BEGIN" || upper.starts_with("XA START") {
        return Statement::Begin;
    }
    if upper == "COMMIT" || upper == "ROLLBACK" || upper.starts_with("XA COMMIT") || upper.starts_with("XA ROLLBACK") {
        return Statement::End;
    }
    let lower = q.to_ascii_lowercase();
    // Triggers change no rows by being created or dropped, and in ROW
    // format what they do is logged as row events. A Migration's write
    // fence is made of them.
    if is_trigger_ddl(&lower) {
        return Statement::Other;
    }
    // A DDL statement that names the one table it changes is judged by that
    // name alone: the operator's own `ALTER TABLE _tag_new ADD KEY tag` on
    // a table called `tag` must not read as DDL on `tag`.
    if let Some((schema, table)) = altered_table(&lower) {
        let schema = schema.unwrap_or_else(|| default_schema.to_ascii_lowercase());
        return match moved
            .iter()
            .find(|t| t.schema.eq_ignore_ascii_case(&schema) && t.table.eq_ignore_ascii_case(&table))
        {
            Some(t) => Statement::TouchesMoved(t.to_string()),
            None => Statement::Other,
        };
    }
    for t in moved {
        let in_schema =
            default_schema.eq_ignore_ascii_case(&t.schema) || mentions(&lower, &t.schema.to_ascii_lowercase());
        if in_schema && mentions(&lower, &t.table.to_ascii_lowercase()) {
            return Statement::TouchesMoved(t.to_string());
        }
    }
    Statement::Other
}

/// The table of `ALTER TABLE t …` (without a RENAME, which names a second
/// table) or of `CREATE/DROP INDEX i ON t`, as (schema, table) in lower
/// case. Anything else is `None` and is matched by every name it mentions.
fn altered_table(lower: &str) -> Option<(Option<String>, String)> {
    let words: Vec<&str> = lower.split_whitespace().collect();
    // The text after the first `n` words.
    let after = |n: usize| {
        let mut rest = lower.trim_start();
        for _ in 0..n {
            rest = rest.split_once(char::is_whitespace)?.1.trim_start();
        }
        Some(rest)
    };
    match words.first()? {
        &"alter" => {
            let mut i = 1;
            while matches!(words.get(i), Some(&"online") | Some(&"offline") | Some(&"ignore")) {
                i += 1;
            }
            if words.get(i) != Some(&"table") || lower.contains("rename") {
                return None;
            }
            qualified_name(after(i + 1)?)
        }
        &"create" | &"drop" => {
            let index = words.iter().position(|w| *w == "index")?;
            if !words[1..index].iter().all(|w| matches!(*w, "unique" | "fulltext" | "spatial" | "online" | "offline")) {
                return None;
            }
            let on = words.iter().position(|w| *w == "on")?;
            qualified_name(after(on + 1)?)
        }
        _ => None,
    }
}

/// `` `s`.`t` ``, `s.t`, `` `t` `` or `t` at the start of `text`.
fn qualified_name(text: &str) -> Option<(Option<String>, String)> {
    fn ident(text: &str) -> Option<(String, &str)> {
        if let Some(rest) = text.strip_prefix('`') {
            let mut name = String::new();
            let mut chars = rest.char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '`' {
                    if rest[i + 1..].starts_with('`') {
                        name.push('`');
                        chars.next();
                    } else {
                        return Some((name, &rest[i + 1..]));
                    }
                } else {
                    name.push(c);
                }
            }
            None
        } else {
            let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(text.len());
            (end > 0).then(|| (text[..end].to_string(), &text[end..]))
        }
    }
    let (first, rest) = ident(text)?;
    match rest.strip_prefix('.') {
        Some(rest) => ident(rest).map(|(table, _)| (Some(first), table)),
        None => Some((None, first)),
    }
}

/// `CREATE [OR REPLACE] [DEFINER=...] TRIGGER ...` or `DROP TRIGGER ...`.
fn is_trigger_ddl(lower: &str) -> bool {
    let mut words = lower.split_whitespace();
    match words.next() {
        Some("drop") => words.next() == Some("trigger"),
        Some("create") => words
            .take(4)
            .take_while(|w| *w == "or" || *w == "replace" || w.starts_with("definer") || *w == "trigger")
            .any(|w| w == "trigger"),
        _ => false,
    }
}

/// `name` occurs in `text` as a whole identifier.
fn mentions(text: &str, name: &str) -> bool {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    let bytes = text.as_bytes();
    text.match_indices(name).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + name.len()).copied();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// A row-event value in the terms the copy uses (binary protocol values),
/// so both reach the target through the same literal encoding.
pub fn normalize(value: BinlogValue<'_>, column: &Column) -> Result<Value> {
    let v = match value {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => {
            let json: serde_json::Value = j.try_into().map_err(|e| MovementError::Binlog {
                position: String::new(),
                reason: format!("column {}: undecodable JSON: {e}", column.name),
            })?;
            return Ok(Value::Bytes(json.to_string().into_bytes()));
        }
        BinlogValue::JsonDiff(_) => {
            return Err(MovementError::Binlog {
                position: String::new(),
                reason: format!("column {}: a partial JSON update carries no full image", column.name),
            });
        }
    };
    Ok(match (&column.kind, v) {
        (Kind::Set(members), Value::Bytes(mask)) => {
            let mut names = Vec::new();
            for (i, m) in members.iter().enumerate() {
                if mask.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0) {
                    names.push(m.as_str());
                }
            }
            Value::Bytes(names.join(",").into_bytes())
        }
        (Kind::Timestamp, Value::Bytes(b)) => timestamp(&String::from_utf8_lossy(&b)),
        (Kind::Timestamp, Value::Int(secs)) => timestamp(&secs.to_string()),
        // YEAR 0000 arrives as 1900 (the raw byte is an offset from 1900, and
        // 0 means 0000); 1900 itself is outside YEAR's range.
        (Kind::Year, Value::Bytes(b)) => match String::from_utf8_lossy(&b).parse::<i64>() {
            Ok(1900) => Value::Int(0),
            Ok(y) => Value::Int(y),
            Err(_) => Value::Bytes(b),
        },
        // BINARY(n) arrives without its trailing 0x00 bytes. Unpadded, a
        // key like 0xAB00 would be written and matched as 0xAB: a DELETE or
        // key UPDATE by it misses, and the hash router routes it elsewhere.
        (Kind::Binary, Value::Bytes(mut b)) => match column.fixed_binary_len() {
            Some(n) if b.len() < n => {
                b.resize(n, 0);
                Value::Bytes(b)
            }
            _ => Value::Bytes(b),
        },
        (_, v) => v,
    })
}

/// Seconds since the epoch (with optional fraction) as a UTC datetime; the
/// engine's sessions run in UTC, so the target stores the same instant.
fn timestamp(s: &str) -> Value {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let secs: i64 = secs.parse().unwrap_or(0);
    let micros: u32 = format!("{frac:0<6}")[..6].parse().unwrap_or(0);
    if secs == 0 && micros == 0 {
        return Value::Date(0, 0, 0, 0, 0, 0, 0);
    }
    match jiff::Timestamp::from_second(secs) {
        Ok(ts) => {
            let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
            Value::Date(
                dt.year() as u16,
                dt.month() as u8,
                dt.day() as u8,
                dt.hour() as u8,
                dt.minute() as u8,
                dt.second() as u8,
                micros,
            )
        }
        Err(_) => Value::Date(0, 0, 0, 0, 0, 0, 0),
    }
}

/// How long the reader waits for an event before reporting `Idle`.
const IDLE_AFTER: Duration = Duration::from_millis(500);

/// The binary log of the source, read from a position on.
pub struct ChangeReader {
    stream: BinlogStream,
    endpoint: String,
    file: String,
    /// Moved tables by name, with their definitions.
    moved: HashMap<(String, String), (usize, Vec<Column>)>,
    moved_names: Vec<TableName>,
    in_transaction: bool,
    began: bool,
    gtid: Option<String>,
    /// Header timestamp of the last event, for lag.
    pub last_event_time: u32,
    pub position: BinlogPosition,
}

impl ChangeReader {
    pub async fn open(
        source: &Endpoint,
        flavor: Flavor,
        server_id: u32,
        from: &BinlogPosition,
        moved: Vec<(TableName, Vec<Column>)>,
    ) -> Result<ChangeReader> {
        let mut conn = source.connect_raw().await?;
        if flavor.is_mariadb() {
            // Capability 4: send GTID events as they are, not rewritten as
            // BEGIN for pre-GTID replicas.
            conn.query_drop("SET @mariadb_slave_capability = 4").await.at(&source.name)?;
        }
        // Heartbeats while idle, in nanoseconds, so a quiet source does not
        // look like a dead one.
        conn.query_drop("SET @master_heartbeat_period = 1000000000").await.at(&source.name)?;
        let binlogs: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.at(&source.name)?;
        let files: Vec<String> = binlogs.iter().filter_map(|r| r.get::<String, _>(0)).collect();
        if !files.contains(&from.file) {
            return Err(MovementError::Checkpoint(format!(
                "binary log {} is no longer on {} (it has {}); the changes since {} are lost to this movement, \
                 so it must start over",
                from.file,
                source.name,
                files.first().map(|f| format!("{f} and later")).unwrap_or_else(|| "none".into()),
                from
            )));
        }
        let request = BinlogStreamRequest::new(server_id).with_filename(from.file.as_bytes()).with_pos(from.position);
        let stream = conn.get_binlog_stream(request).await.at(&source.name)?;
        let moved_names = moved.iter().map(|(n, _)| n.clone()).collect();
        let moved = moved
            .into_iter()
            .enumerate()
            .map(|(i, (n, cols))| ((n.schema.to_ascii_lowercase(), n.table.to_ascii_lowercase()), (i, cols)))
            .collect();
        Ok(ChangeReader {
            stream,
            endpoint: source.name.clone(),
            file: from.file.clone(),
            moved,
            moved_names,
            in_transaction: false,
            began: false,
            gtid: from.gtid.clone(),
            last_event_time: 0,
            position: from.clone(),
        })
    }

    fn error(&self, reason: String) -> MovementError {
        MovementError::Binlog { position: self.position.to_string(), reason }
    }

    /// The next thing worth telling the applier.
    pub async fn next(&mut self) -> Result<Item> {
        loop {
            let event = match tokio::time::timeout(IDLE_AFTER, self.stream.next()).await {
                Err(_) => return Ok(Item::Idle),
                Ok(None) => return Err(self.error("the source closed the binary log stream".into())),
                Ok(Some(Err(e))) => return Err(MovementError::MySql { endpoint: self.endpoint.clone(), source: e }),
                Ok(Some(Ok(e))) => e,
            };
            if let Some(item) = self.handle(&event)? {
                return Ok(item);
            }
        }
    }

    fn handle(&mut self, event: &Event) -> Result<Option<Item>> {
        let header = event.header();
        let kind = header.event_type_raw();
        if header.timestamp() != 0 {
            self.last_event_time = header.timestamp();
        }
        let mut item = None;
        match handling(kind) {
            Handling::Refuse(what) => {
                return Err(
                    self.error(format!("event type 0x{kind:02x} is {what}; stopping rather than skipping changes"))
                );
            }
            Handling::Ignore => {}
            Handling::MariaDbGtid => {
                self.gtid = mariadb_gtid(event.data(), header.server_id());
                self.in_transaction = true;
                self.began = false;
            }
            Handling::Decode => {
                let data = event.read_data().map_err(|e| self.error(format!("undecodable event: {e}")))?;
                match data {
                    Some(EventData::RotateEvent(r)) => {
                        // The fake rotate a dump starts with arrives before
                        // the format event that says whether events carry a
                        // checksum, so its name may end in checksum bytes.
                        // It names the file we asked for anyway; only a real
                        // rotate (the last event of a file) moves us on.
                        if header.log_pos() == 0 || r.is_fake() {
                            return Ok(None);
                        }
                        self.file = r.name().to_string();
                        self.position =
                            BinlogPosition { file: self.file.clone(), position: r.position(), gtid: self.gtid.clone() };
                        return Ok(Some(Item::Boundary(self.position.clone())));
                    }
                    Some(EventData::GtidEvent(g)) => {
                        let sid = g.sid();
                        let uuid = sid.iter().map(|b| format!("{b:02x}")).collect::<String>();
                        self.gtid = Some(format!(
                            "{}-{}-{}-{}-{}:{}",
                            &uuid[0..8],
                            &uuid[8..12],
                            &uuid[12..16],
                            &uuid[16..20],
                            &uuid[20..32],
                            g.gno()
                        ));
                        self.in_transaction = true;
                        self.began = false;
                    }
                    Some(EventData::QueryEvent(q)) => match classify(&q.schema(), &q.query(), &self.moved_names) {
                        Statement::Begin => {
                            self.in_transaction = true;
                            self.began = true;
                        }
                        Statement::End => self.in_transaction = false,
                        Statement::TouchesMoved(table) => {
                            return Err(MovementError::Ddl {
                                position: self.position.to_string(),
                                statement: format!(
                                    "{} (changes {table})",
                                    q.query().chars().take(300).collect::<String>()
                                ),
                            });
                        }
                        Statement::Other => {
                            if !self.began {
                                self.in_transaction = false;
                            }
                        }
                    },
                    Some(EventData::XidEvent(_)) => self.in_transaction = false,
                    Some(EventData::XaPrepareLogEvent(_)) => self.in_transaction = false,
                    Some(EventData::RowsEvent(rows)) => item = self.rows(&rows)?,
                    _ => {}
                }
            }
        }
        if !self.in_transaction && header.log_pos() != 0 && item.is_none() {
            self.began = false;
            self.position = BinlogPosition {
                file: self.file.clone(),
                position: u64::from(header.log_pos()),
                gtid: self.gtid.clone(),
            };
            return Ok(Some(Item::Boundary(self.position.clone())));
        }
        Ok(item)
    }

    fn rows(&self, rows: &RowsEventData<'_>) -> Result<Option<Item>> {
        let Some(tme) = self.stream.get_tme(rows.table_id()) else {
            return Err(self.error(format!("row event for unknown table id {}", rows.table_id())));
        };
        let key = (tme.database_name().to_ascii_lowercase(), tme.table_name().to_ascii_lowercase());
        let Some((route, columns)) = self.moved.get(&key) else { return Ok(None) };
        if matches!(rows, RowsEventData::PartialUpdateRowsEvent(_)) {
            return Err(self.error(format!("partial JSON update of {}.{}", key.0, key.1)));
        }
        if tme.columns_count() as usize != columns.len() {
            return Err(MovementError::Ddl {
                position: self.position.to_string(),
                statement: format!(
                    "{}.{} has {} columns in the binary log but {} when the movement started",
                    key.0,
                    key.1,
                    tme.columns_count(),
                    columns.len()
                ),
            });
        }
        let image = |row: mysql_async::binlog::row::BinlogRow| -> Result<Vec<Value>> {
            row.unwrap()
                .into_iter()
                .zip(columns)
                .map(|(v, c)| normalize(v, c).map_err(|e| self.error(e.to_string())))
                .collect()
        };
        let mut changes = Vec::new();
        for r in rows.rows(tme) {
            let (before, after) = r.map_err(|e| self.error(format!("undecodable row of {}.{}: {e}", key.0, key.1)))?;
            changes.push(match (before, after) {
                (None, Some(a)) => Change::Insert(image(a)?),
                (Some(b), Some(a)) => Change::Update(image(b)?, image(a)?),
                (Some(b), None) => Change::Delete(image(b)?),
                (None, None) => continue,
            });
        }
        Ok(Some(Item::Rows { route: *route, changes }))
    }

    pub async fn close(self) {
        let _ = self.stream.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::movement::schema::tests::column;

    #[test]
    fn unknown_and_compressed_events_are_refused() {
        assert_eq!(handling(0x17), Handling::Decode);
        assert_eq!(handling(0xa2), Handling::MariaDbGtid);
        assert_eq!(handling(0xa0), Handling::Ignore);
        for t in [0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0x42, 0x12] {
            assert!(matches!(handling(t), Handling::Refuse(_)), "0x{t:02x}");
        }
        let Handling::Refuse(why) = handling(0xa9) else { unreachable!() };
        assert!(why.contains("log_bin_compress"));
    }

    #[test]
    fn mariadb_gtid_events_parse() {
        let mut data = 42u64.to_le_bytes().to_vec();
        data.extend(3u32.to_le_bytes());
        data.push(0);
        assert_eq!(mariadb_gtid(&data, 101).as_deref(), Some("3-101-42"));
        assert_eq!(mariadb_gtid(&data[..5], 101), None);
    }

    #[test]
    fn statements_that_touch_moved_tables() {
        let moved = [TableName::new("shop", "orders")];
        assert_eq!(classify("x", "BEGIN", &moved), Statement::Begin);
        assert_eq!(classify("x", "COMMIT", &moved), Statement::End);
        assert_eq!(
            classify("shop", "ALTER TABLE orders ADD COLUMN x INT", &moved),
            Statement::TouchesMoved("shop.orders".into())
        );
        assert_eq!(
            classify("other", "alter table `shop`.`orders` drop x", &moved),
            Statement::TouchesMoved("shop.orders".into())
        );
        assert_eq!(classify("shop", "ALTER TABLE orders_archive ADD x INT", &moved), Statement::Other);
        assert_eq!(
            classify("other", "ALTER TABLE orders ADD x INT", &moved),
            Statement::Other,
            "another schema's orders"
        );
        assert_eq!(classify("shop", "CREATE TABLE t (id INT)", &moved), Statement::Other);
        assert_eq!(
            classify("shop", "CREATE INDEX i ON `shop`.`orders` (x)", &moved),
            Statement::TouchesMoved("shop.orders".into())
        );
        assert_eq!(
            classify("shop", "ALTER TABLE other RENAME TO orders", &moved),
            Statement::TouchesMoved("shop.orders".into()),
            "a rename names a second table"
        );
    }

    #[test]
    fn ddl_is_judged_by_the_table_it_changes_not_its_index_names() {
        let moved = [TableName::new("edge", "tag")];
        assert_eq!(classify("x", "ALTER TABLE `edge`.`_tag_new` ADD KEY `tag` (`tag`)", &moved), Statement::Other);
        assert_eq!(classify("edge", "CREATE INDEX tag ON _tag_new (tag)", &moved), Statement::Other);
        assert_eq!(classify("edge", "DROP INDEX tag ON `_tag_new`", &moved), Statement::Other);
        assert_eq!(
            classify("x", "ALTER ONLINE TABLE `edge`.`tag` ADD KEY k (tag)", &moved),
            Statement::TouchesMoved("edge.tag".into())
        );
        assert_eq!(classify("edge", "ALTER TABLE `t``ag` ADD x INT", &moved), Statement::Other);
        assert_eq!(qualified_name("`a``b`.`c` add"), Some((Some("a`b".into()), "c".into())));
        assert_eq!(qualified_name("tag add key"), Some((None, "tag".into())));
    }

    #[test]
    fn trigger_ddl_on_moved_tables_is_harmless() {
        let moved = [TableName::new("shop", "orders")];
        let create = "CREATE DEFINER=`root`@`localhost` TRIGGER `shop`.`sy_fence_ins` BEFORE INSERT ON `shop`.`orders` FOR EACH ROW SIGNAL SQLSTATE '45000'";
        assert_eq!(classify("shop", create, &moved), Statement::Other);
        assert_eq!(classify("shop", "DROP TRIGGER IF EXISTS `shop`.`orders_bi`", &moved), Statement::Other);
        assert_eq!(
            classify("shop", "CREATE TABLE orders_trigger LIKE orders", &moved),
            Statement::TouchesMoved("shop.orders".into()),
            "a table named like a trigger is still DDL"
        );
    }

    #[test]
    fn row_event_values_normalize() {
        let set = column("s", Kind::Set(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(
            normalize(BinlogValue::Value(Value::Bytes(vec![0b101])), &set).unwrap(),
            Value::Bytes(b"a,c".to_vec())
        );
        let ts = column("t", Kind::Timestamp);
        assert_eq!(
            normalize(BinlogValue::Value(Value::Bytes(b"1700000000.5".to_vec())), &ts).unwrap(),
            Value::Date(2023, 11, 14, 22, 13, 20, 500000)
        );
        assert_eq!(
            normalize(BinlogValue::Value(Value::Bytes(b"0".to_vec())), &ts).unwrap(),
            Value::Date(0, 0, 0, 0, 0, 0, 0)
        );
        let year = column("y", Kind::Year);
        assert_eq!(normalize(BinlogValue::Value(Value::Bytes(b"1900".to_vec())), &year).unwrap(), Value::Int(0));
        assert_eq!(normalize(BinlogValue::Value(Value::Bytes(b"2024".to_vec())), &year).unwrap(), Value::Int(2024));
        let e = column("e", Kind::Enum(vec!["x".into()]));
        assert_eq!(
            normalize(BinlogValue::Value(Value::Int(1)), &e).unwrap(),
            Value::Int(1),
            "the encoder maps indexes"
        );
    }

    #[test]
    fn fixed_binary_values_get_their_trailing_zeros_back() {
        let mut k = column("k", Kind::Binary);
        k.column_type = "binary(4)".into();
        let raw = |b: &[u8]| BinlogValue::Value(Value::Bytes(b.to_vec()));
        assert_eq!(normalize(raw(&[0xab]), &k).unwrap(), Value::Bytes(vec![0xab, 0, 0, 0]));
        assert_eq!(normalize(raw(&[]), &k).unwrap(), Value::Bytes(vec![0, 0, 0, 0]));
        assert_eq!(normalize(raw(&[1, 2, 3, 4]), &k).unwrap(), Value::Bytes(vec![1, 2, 3, 4]));
        let mut v = column("v", Kind::Binary);
        v.column_type = "varbinary(4)".into();
        assert_eq!(normalize(raw(&[0xab]), &v).unwrap(), Value::Bytes(vec![0xab]), "VARBINARY keeps its length");
    }
}
