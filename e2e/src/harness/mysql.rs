//! Talking to a database pod the way an application does: TCP to the pod IP.

use std::time::Duration;

use anyhow::Context;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// Connect over TCP (never the local socket, even for 127.0.0.x).
pub async fn mysql(ip: &str, user: &str, password: &str) -> anyhow::Result<Conn> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(ip.to_string())
        .tcp_port(3306)
        .user(Some(user.to_string()))
        .pass(Some(password.to_string()))
        .prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(10), Conn::new(opts))
        .await
        .with_context(|| format!("connecting to {ip}:3306 timed out"))?
        .with_context(|| format!("connecting to {ip}:3306 as {user}"))
}

/// First column of the first row.
pub async fn query_value<T: mysql_async::prelude::FromValue + Send + 'static>(
    conn: &mut Conn,
    sql: &str,
) -> anyhow::Result<Option<T>> {
    conn.query_first(sql).await.with_context(|| format!("query: {sql}"))
}
