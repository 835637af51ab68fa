//! Values as SQL literals. Both the copy (binary protocol rows) and the change
//! apply (row events, normalized by `binlog::normalize`) end here, so a value
//! is written the same way whichever path moved it.
//!
//! Character data is written with its charset introducer, and as hex unless
//! it is plain ASCII: the bytes then reach the target unchanged whatever the
//! connection charset, and convert only if the target column's charset
//! differs (a schema change that converts a table).

use std::fmt::Write;

use mysql_async::Value;
use serde::{Deserialize, Serialize};

use super::schema::Kind;

/// Appends `value` as a literal for a column of `kind`.
pub fn write_literal(out: &mut String, value: &Value, kind: &Kind) {
    match value {
        Value::NULL => out.push_str("NULL"),
        Value::Int(i) => match kind {
            Kind::Int { bytes, unsigned: true } if *i < 0 => {
                // MariaDB's row events carry no signedness: reinterpret the
                // raw bits at the column's width.
                let bits = u32::from(*bytes) * 8;
                let v = if bits >= 64 { *i as u64 } else { (*i as u64) & ((1u64 << bits) - 1) };
                let _ = write!(out, "{v}");
            }
            Kind::Enum(members) => write_member(out, *i as usize, members),
            _ => {
                let _ = write!(out, "{i}");
            }
        },
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        // Exponent form is the shortest text that reads back to the same
        // binary value, and it is always parsed as a double. A FLOAT is
        // written as the double it equals exactly: its own shortest text
        // (3.4028235e38 for the largest) reads as a double just above
        // FLT_MAX, which the server refuses as out of range.
        Value::Float(f) => {
            let _ = write!(out, "{:e}", f64::from(*f));
        }
        Value::Double(d) => {
            let _ = write!(out, "{d:e}");
        }
        Value::Date(y, mo, d, h, mi, s, us) => {
            if *kind == Kind::Date {
                let _ = write!(out, "'{y:04}-{mo:02}-{d:02}'");
            } else {
                let _ = write!(out, "'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}'");
            }
        }
        Value::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *neg { "-" } else { "" };
            let _ = write!(out, "'{sign}{hours:02}:{mi:02}:{s:02}.{us:06}'");
        }
        Value::Bytes(b) => write_bytes(out, b, kind),
    }
}

fn write_member(out: &mut String, index: usize, members: &[String]) {
    // Index 0 is the empty "error" member that non-strict inserts store.
    match index.checked_sub(1).and_then(|i| members.get(i)) {
        Some(m) => write_text(out, m.as_bytes(), "utf8mb4"),
        None => out.push_str("''"),
    }
}

fn write_bytes(out: &mut String, b: &[u8], kind: &Kind) {
    match kind {
        k if k.is_numeric() && is_number(b) => out.push_str(std::str::from_utf8(b).unwrap_or("0")),
        Kind::Text { charset } => write_text(out, b, charset),
        Kind::Enum(_) | Kind::Set(_) | Kind::Json => write_text(out, b, "utf8mb4"),
        Kind::Binary | Kind::Bit => write_hex(out, b),
        _ if is_plain(b) => {
            out.push('\'');
            out.push_str(std::str::from_utf8(b).unwrap_or_default());
            out.push('\'');
        }
        _ => write_hex(out, b),
    }
}

fn is_number(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
}

/// Printable ASCII without quote or backslash: safe inside '...' in any
/// ASCII-compatible charset and any sql_mode.
fn is_plain(b: &[u8]) -> bool {
    b.iter().all(|c| (0x20..0x7f).contains(c) && *c != b'\'' && *c != b'\\')
}

/// Charsets in which ASCII bytes mean ASCII characters.
fn ascii_compatible(charset: &str) -> bool {
    !matches!(charset, "ucs2" | "utf16" | "utf16le" | "utf32")
}

/// The engine sessions' `character_set_connection`: a plain literal is
/// already in it, so it needs no introducer (which costs the server a
/// validation pass per value).
const CONNECTION_CHARSET: &str = "utf8mb4";

fn write_text(out: &mut String, b: &[u8], charset: &str) {
    if ascii_compatible(charset) && is_plain(b) {
        if charset != CONNECTION_CHARSET {
            let _ = write!(out, "_{charset}");
        }
        out.push('\'');
        out.push_str(std::str::from_utf8(b).unwrap_or_default());
        out.push('\'');
    } else {
        let _ = write!(out, "_{charset} ");
        write_hex(out, b);
    }
}

fn write_hex(out: &mut String, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(b.len() * 2 + 3);
    out.push_str("X'");
    for byte in b {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out.push('\'');
}

pub fn literal(value: &Value, kind: &Kind) -> String {
    let mut s = String::new();
    write_literal(&mut s, value, kind);
    s
}

/// A key value in a checkpoint: what `Value` holds, in a form that survives
/// JSON (and a resource's status) unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyValue {
    Null,
    Int(i64),
    UInt(u64),
    Double(f64),
    /// Bytes that are UTF-8.
    Text(String),
    /// Any other bytes, hex-encoded.
    Hex(String),
}

impl From<&Value> for KeyValue {
    fn from(v: &Value) -> KeyValue {
        match v {
            Value::NULL => KeyValue::Null,
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::UInt(*u),
            Value::Float(f) => KeyValue::Double(f64::from(*f)),
            Value::Double(d) => KeyValue::Double(*d),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => KeyValue::Text(s.to_string()),
                Err(_) => KeyValue::Hex(b.iter().map(|c| format!("{c:02X}")).collect()),
            },
            // Temporal keys are kept as the literal text the server accepts.
            other => {
                let lit = literal(other, &Kind::DateTime);
                KeyValue::Text(lit.trim_matches('\'').to_string())
            }
        }
    }
}

impl KeyValue {
    pub fn to_value(&self) -> Value {
        match self {
            KeyValue::Null => Value::NULL,
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::UInt(u) => Value::UInt(*u),
            KeyValue::Double(d) => Value::Double(*d),
            KeyValue::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
            KeyValue::Hex(h) => Value::Bytes(
                (0..h.len() / 2).filter_map(|i| u8::from_str_radix(h.get(i * 2..i * 2 + 2)?, 16).ok()).collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> Kind {
        Kind::Text { charset: "utf8mb4".into() }
    }

    #[test]
    fn integers_and_unsigned_reinterpretation() {
        assert_eq!(literal(&Value::Int(-5), &Kind::Int { bytes: 4, unsigned: false }), "-5");
        assert_eq!(literal(&Value::Int(-1), &Kind::Int { bytes: 1, unsigned: true }), "255");
        assert_eq!(literal(&Value::Int(-1), &Kind::Int { bytes: 3, unsigned: true }), "16777215");
        assert_eq!(literal(&Value::Int(-1), &Kind::Int { bytes: 8, unsigned: true }), "18446744073709551615");
        assert_eq!(literal(&Value::UInt(u64::MAX), &Kind::Int { bytes: 8, unsigned: true }), "18446744073709551615");
        assert_eq!(literal(&Value::Bytes(b"-12.50".to_vec()), &Kind::Decimal), "-12.50");
    }

    #[test]
    fn floats_round_trip() {
        assert_eq!(literal(&Value::Float(2.7182817), &Kind::Float), "2.7182817459106445e0");
        for f in [f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45, -1.175_494_4e-38, 0.1] {
            let back: f64 = literal(&Value::Float(f), &Kind::Float).parse().unwrap();
            assert_eq!(back, f64::from(f), "{f:e} reads back as the double it equals");
            assert!(back.abs() <= f64::from(f32::MAX), "{f:e} stays within FLOAT's range");
        }
        assert_eq!(literal(&Value::Double(0.1), &Kind::Double), "1e-1");
        let s = literal(&Value::Double(1.0 / 3.0), &Kind::Double);
        assert_eq!(s.parse::<f64>().unwrap(), 1.0 / 3.0);
    }

    #[test]
    fn text_is_safe_in_any_charset_and_mode() {
        assert_eq!(literal(&Value::Bytes(b"abc".to_vec()), &text()), "'abc'");
        assert_eq!(literal(&Value::Bytes(b"abc".to_vec()), &Kind::Text { charset: "latin1".into() }), "_latin1'abc'");
        assert_eq!(literal(&Value::Bytes(b"it's".to_vec()), &text()), "_utf8mb4 X'69742773'");
        assert_eq!(literal(&Value::Bytes("😀".as_bytes().to_vec()), &text()), "_utf8mb4 X'F09F9880'");
        assert_eq!(literal(&Value::Bytes(b"a\\b".to_vec()), &text()), "_utf8mb4 X'615C62'");
        assert_eq!(literal(&Value::Bytes(vec![0xe9]), &Kind::Text { charset: "latin1".into() }), "_latin1 X'E9'");
        assert_eq!(literal(&Value::Bytes(b"ab".to_vec()), &Kind::Text { charset: "ucs2".into() }), "_ucs2 X'6162'");
        assert_eq!(literal(&Value::Bytes(vec![0, 1, 255]), &Kind::Binary), "X'0001FF'");
        assert_eq!(literal(&Value::Bytes(vec![]), &Kind::Binary), "X''");
    }

    #[test]
    fn enums_from_row_events_are_indexes() {
        let e = Kind::Enum(vec!["small".into(), "large".into()]);
        assert_eq!(literal(&Value::Int(2), &e), "'large'");
        assert_eq!(literal(&Value::Int(0), &e), "''");
        assert_eq!(literal(&Value::Bytes(b"small".to_vec()), &e), "'small'");
    }

    #[test]
    fn temporal_values_keep_fractions() {
        let dt = Value::Date(2024, 2, 29, 23, 59, 58, 123456);
        assert_eq!(literal(&dt, &Kind::DateTime), "'2024-02-29 23:59:58.123456'");
        assert_eq!(literal(&Value::Date(2024, 2, 29, 0, 0, 0, 0), &Kind::Date), "'2024-02-29'");
        assert_eq!(literal(&Value::Time(true, 1, 2, 3, 4, 5), &Kind::Time), "'-26:03:04.000005'");
        assert_eq!(literal(&Value::Bytes(b"2024-01-01".to_vec()), &Kind::Date), "'2024-01-01'");
    }

    #[test]
    fn key_values_round_trip_through_json() {
        for v in [
            Value::Int(-3),
            Value::UInt(u64::MAX),
            Value::Bytes(b"abc".to_vec()),
            Value::Bytes(vec![0xff, 0x00]),
            Value::NULL,
        ] {
            let k = KeyValue::from(&v);
            let back: KeyValue = serde_json::from_str(&serde_json::to_string(&k).unwrap()).unwrap();
            assert_eq!(back.to_value(), v);
        }
        let k = KeyValue::from(&Value::Date(2020, 1, 2, 3, 4, 5, 6));
        assert_eq!(k, KeyValue::Text("2020-01-02 03:04:05.000006".into()));
    }
}
