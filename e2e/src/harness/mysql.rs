//! Talking to a database pod the way an application does: TCP to the pod IP.

use std::time::Duration;

use anyhow::Context;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// Connect over TCP (never the local socket, even for 127.0.0.x). `ip` may
/// carry a port (`127.0.0.1:33071`); pods listen on 3306.
pub async fn mysql(ip: &str, user: &str, password: &str) -> anyhow::Result<Conn> {
    let (host, port) = match ip.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().with_context(|| format!("bad port in {ip}"))?),
        None => (ip, 3306),
    };
    let opts = OptsBuilder::default()
        .ip_or_hostname(host.to_string())
        .tcp_port(port)
        .user(Some(user.to_string()))
        .pass(Some(password.to_string()))
        .prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(10), Conn::new(opts))
        .await
        .with_context(|| format!("connecting to {host}:{port} timed out"))?
        .with_context(|| format!("connecting to {host}:{port} as {user}"))
}

/// First column of the first row.
pub async fn query_value<T: mysql_async::prelude::FromValue + Send + 'static>(
    conn: &mut Conn,
    sql: &str,
) -> anyhow::Result<Option<T>> {
    conn.query_first(sql).await.with_context(|| format!("query: {sql}"))
}
