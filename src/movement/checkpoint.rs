//! The whole memory of a movement. The caller stores it (in the resource's
//! status) and hands it back after a restart; the engine keeps nothing else.
//! Everything it describes is safe to redo: rows are written by key with
//! REPLACE and deletes by key, so replaying past the checkpoint converges.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::value::KeyValue;

/// A place in the source's binary log, always at a transaction boundary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BinlogPosition {
    pub file: String,
    pub position: u64,
    /// The last transaction's GTID there, for people (MariaDB `d-s-n`, MySQL
    /// `uuid:n`). Positioning uses file and offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
}

impl BinlogPosition {
    pub fn new(file: &str, position: u64) -> BinlogPosition {
        BinlogPosition { file: file.to_string(), position, gtid: None }
    }

    /// Orders positions across files: `mysql-bin.000010` follows `.000009`.
    pub fn cmp_position(&self, other: &BinlogPosition) -> Ordering {
        file_number(&self.file).cmp(&file_number(&other.file)).then(self.position.cmp(&other.position))
    }
}

impl std::fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.position)?;
        if let Some(g) = &self.gtid {
            write!(f, " ({g})")?;
        }
        Ok(())
    }
}

/// The sequence number of a binary log file; one server's files share the
/// base name, so the number alone orders them.
fn file_number(file: &str) -> u64 {
    file.rsplit_once('.').and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Rows are copied from a snapshot; changes wait in the binary log.
    #[default]
    Copy,
    /// The copy is done; changes stream from the binary log.
    Apply,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableCheckpoint {
    /// `schema.table` of the source.
    pub table: String,
    /// Key of the last row copied; every row up to it is on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<KeyValue>>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub rows_copied: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub phase: Phase,
    /// Where change apply starts: the binary log position of the first copy
    /// snapshot. Later snapshots (after a resume) are newer, and applying
    /// from here over them converges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<BinlogPosition>,
    #[serde(default)]
    pub tables: Vec<TableCheckpoint>,
    /// End of the last source transaction applied to every target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<BinlogPosition>,
}

impl Checkpoint {
    /// Where the binary log must be read from next.
    pub fn resume_position(&self) -> Option<&BinlogPosition> {
        self.applied.as_ref().or(self.snapshot.as_ref())
    }

    pub fn table(&self, name: &str) -> Option<&TableCheckpoint> {
        self.tables.iter().find(|t| t.table == name)
    }

    pub fn table_mut(&mut self, name: &str) -> &mut TableCheckpoint {
        if let Some(i) = self.tables.iter().position(|t| t.table == name) {
            return &mut self.tables[i];
        }
        self.tables.push(TableCheckpoint { table: name.to_string(), ..Default::default() });
        self.tables.last_mut().expect("just pushed")
    }

    pub fn rows_copied(&self) -> u64 {
        self.tables.iter().map(|t| t.rows_copied).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_across_files() {
        let a = BinlogPosition::new("mysql-bin.000009", 900);
        let b = BinlogPosition::new("mysql-bin.000010", 4);
        assert_eq!(a.cmp_position(&b), Ordering::Less);
        assert_eq!(b.cmp_position(&BinlogPosition::new("mysql-bin.000010", 4)), Ordering::Equal);
        assert_eq!(BinlogPosition::new("mysql-bin.000010", 5).cmp_position(&b), Ordering::Greater);
    }

    #[test]
    fn round_trips_through_json() {
        let mut cp = Checkpoint { snapshot: Some(BinlogPosition::new("mysql-bin.000001", 328)), ..Default::default() };
        cp.table_mut("shop.orders").after = Some(vec![KeyValue::Int(42), KeyValue::Text("x".into())]);
        cp.table_mut("shop.orders").rows_copied = 42;
        cp.table_mut("shop.items").done = true;
        cp.applied = Some(BinlogPosition { gtid: Some("0-1-7".into()), ..BinlogPosition::new("mysql-bin.000002", 10) });
        let json = serde_json::to_string(&cp).unwrap();
        let back: Checkpoint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cp);
        assert_eq!(back.rows_copied(), 42);
        assert_eq!(back.resume_position().unwrap().file, "mysql-bin.000002");
        assert_eq!(back.tables.len(), 2);
    }

    #[test]
    fn resume_from_snapshot_before_any_apply() {
        let cp = Checkpoint { snapshot: Some(BinlogPosition::new("f.000001", 4)), ..Default::default() };
        assert_eq!(cp.resume_position(), Some(&BinlogPosition::new("f.000001", 4)));
        assert_eq!(Checkpoint::default().resume_position(), None);
    }
}
