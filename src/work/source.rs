//! Binary log positions belong to one server. Work that reads a cluster's
//! binary log (every copy, every change stream) records the `@@server_id` of
//! the primary it started on, and checks before each pass and again under
//! the lock of every commit that it still runs there:
//!
//! - the cluster's primary is re-read from the MySQLCluster each pass, so an
//!   engine built on a primary that was since demoted is rebuilt;
//! - a new primary means the recorded positions mean nothing: the kind
//!   starts its copy over there (its targets are its own, and emptied);
//! - under the commit's lock the session must still be on the recorded
//!   server and that server must still take writes, so a switchover that
//!   raced the pass cannot have the commit land on a demoted primary.
//!
//! The server refuses the rest: the account the work uses (the cluster's
//! mover account) cannot write past `read_only`, so a write the engine
//! sends to a demoted primary fails instead of becoming an errant
//! transaction.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::error::{Doing, WorkError};
use crate::movement::Endpoint;

/// Which server a session is on, and whether it still takes writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Server {
    pub server_id: i64,
    pub read_only: bool,
}

pub async fn identify(conn: &mut Conn) -> Result<Server, WorkError> {
    let row: Option<(i64, i64)> =
        conn.query_first("SELECT @@server_id, @@global.read_only").await.doing(|| "reading server_id".into())?;
    let (server_id, read_only) = row.unwrap_or_default();
    Ok(Server { server_id, read_only: read_only != 0 })
}

/// [`identify`] on a session of its own, for an engine job about to be built.
pub async fn identify_at(endpoint: &Endpoint) -> Result<Server, WorkError> {
    let mut conn = endpoint.connect_raw().await?;
    let server = identify(&mut conn).await;
    let _ = conn.disconnect().await;
    server
}

/// What a pass learns by comparing the server it reads now with the one the
/// recorded positions were taken on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nothing recorded yet: record this one.
    First(i64),
    Same,
    /// The primary changed: positions from `was` are meaningless on `now`.
    Moved {
        was: i64,
        now: i64,
    },
}

pub fn judge(recorded: Option<i64>, now: i64) -> Source {
    match recorded {
        None => Source::First(now),
        Some(was) if was != now => Source::Moved { was, now },
        Some(_) => Source::Same,
    }
}

/// Whether an engine built on `built` still talks to the server the cluster
/// now names as its primary (`live`). A switchover leaves the old primary up,
/// so its connections do not break on their own.
pub fn same_address(built: &Endpoint, live: &Endpoint) -> bool {
    built.opts.ip_or_hostname() == live.opts.ip_or_hostname() && built.opts.tcp_port() == live.opts.tcp_port()
}

/// Checked under the commit's lock: why the commit must not go ahead on this
/// session, or None when it is on the recorded primary and that still takes
/// writes. A switchover sets `read_only` before it promotes another server,
/// and setting it waits for the locks and commits in flight, so the answer
/// holds while the lock is held.
pub fn commit_refusal(recorded: Option<i64>, found: Server) -> Option<String> {
    if found.read_only {
        return Some(format!("server_id {} is read-only: the cluster is switching over", found.server_id));
    }
    match recorded {
        Some(was) if was != found.server_id => Some(format!(
            "the positions were read on server_id {was}, but the lock is held on server_id {}: the primary changed",
            found.server_id
        )),
        _ => None,
    }
}

/// [`identify`] then [`commit_refusal`], on a session that holds the
/// commit's lock.
pub async fn confirm(conn: &mut Conn, recorded: Option<i64>) -> Result<Option<String>, WorkError> {
    Ok(commit_refusal(recorded, identify(conn).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::access::endpoint;

    #[test]
    fn the_first_server_is_recorded_and_another_one_is_a_move() {
        assert_eq!(judge(None, 7), Source::First(7));
        assert_eq!(judge(Some(7), 7), Source::Same);
        assert_eq!(judge(Some(7), 8), Source::Moved { was: 7, now: 8 });
    }

    #[test]
    fn an_engine_on_another_address_is_stale() {
        let a = endpoint("db", "127.0.10.1", 3306, "u", "p");
        assert!(same_address(&a, &endpoint("db", "127.0.10.1", 3306, "u", "other")));
        assert!(!same_address(&a, &endpoint("db", "127.0.10.2", 3306, "u", "p")));
        assert!(!same_address(&a, &endpoint("db", "127.0.10.1", 3307, "u", "p")));
    }

    #[test]
    fn a_commit_goes_ahead_only_on_the_recorded_writable_primary() {
        let on = |server_id, read_only| Server { server_id, read_only };
        assert_eq!(commit_refusal(Some(1), on(1, false)), None);
        assert_eq!(commit_refusal(None, on(1, false)), None);
        assert!(commit_refusal(Some(1), on(1, true)).unwrap().contains("read-only"));
        assert!(commit_refusal(Some(1), on(2, false)).unwrap().contains("primary changed"));
        assert!(commit_refusal(Some(2), on(1, true)).unwrap().contains("switching over"));
    }
}
