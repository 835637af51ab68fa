//! `incremental.mode: replication` as the runner drives it: hand-over,
//! watching, removal. The SQL is in `super::super::replica`.

use super::*;

impl Runner {
    pub(super) async fn replica_state(&self) -> Result<Option<replica::State>, WorkError> {
        let (mut tgt, flavor) = self.target_session().await?;
        let state = replica::state(&mut tgt, flavor, &self.channel()).await?;
        let _ = tgt.disconnect().await;
        Ok(state)
    }

    /// Hands the change stream to the target: it replicates from `from`.
    pub(super) async fn start_replica(&mut self, from: &crate::movement::BinlogPosition) -> Result<(), WorkError> {
        let source = self.source().await?;
        let user = source.opts.user().unwrap_or_default().to_string();
        let password = source.opts.pass().unwrap_or_default().to_string();
        let host = source.opts.ip_or_hostname().to_string();
        let port = source.opts.tcp_port();
        let (mut tgt, flavor) = self.target_session().await?;
        let name = self.channel();
        let src = replica::Source { host: &host, port, user: &user, password: &password };
        let mut statements = replica::configure(flavor, &name, &src, from, &self.tables());
        statements.push(replica::start(flavor, &name));
        replica::run_all(&mut tgt, statements, "starting replication on the target").await?;
        let _ = tgt.disconnect().await;
        // The engine's stream ends here.
        self.engine = None;
        self.res
            .event(
                EventType::Normal,
                "ReplicationStarted",
                format!("the target's primary replicates the moved tables from {from} (connection {name})"),
            )
            .await;
        Ok(())
    }

    /// The replication lag, starting a stopped connection. A replication
    /// error is retried (and shown) like any other.
    pub(super) async fn replica_lag(&self) -> Result<Duration, WorkError> {
        let (mut tgt, flavor) = self.target_session().await?;
        let name = self.channel();
        let state = replica::state(&mut tgt, flavor, &name).await?.ok_or_else(|| {
            WorkError::Inconsistent(format!(
                "the target's replication connection {name} is gone; the migration cannot know what it applied"
            ))
        })?;
        if let Some(err) = state.error.clone().filter(|_| !state.sql_running || !state.io_running) {
            return Err(WorkError::Sql {
                what: format!("replication connection {name} on the target"),
                source: mysql_async::Error::Other(err.into()),
            });
        }
        if !state.sql_running || !state.io_running {
            // The target restarted (skip_slave_start): resume.
            replica::run_all(&mut tgt, vec![replica::start(flavor, &name)], "starting replication").await?;
        }
        let _ = tgt.disconnect().await;
        Ok(Duration::from_secs(state.lag_seconds.unwrap_or(0).max(0) as u64))
    }

    pub(super) async fn remove_replica(&self) -> Result<(), WorkError> {
        let (mut tgt, flavor) = self.target_session().await?;
        let name = self.channel();
        if replica::state(&mut tgt, flavor, &name).await?.is_some() {
            replica::run_all(&mut tgt, replica::remove(flavor, &name), "removing the replication connection").await?;
        }
        let _ = tgt.disconnect().await;
        Ok(())
    }
}

pub(super) fn cp_applied(status: &MigrationStatus) -> Result<crate::movement::BinlogPosition, WorkError> {
    let cp = task::checkpoint_from(status.checkpoint.as_ref()).map_err(WorkError::Inconsistent)?;
    cp.resume_position().cloned().ok_or_else(|| WorkError::Inconsistent("no applied position to replicate from".into()))
}

/// Why the target cannot replicate from the source, if it cannot.
pub(super) async fn replication_problems(
    src: &mut mysql_async::Conn,
    source_flavor: Flavor,
    tgt: &mut mysql_async::Conn,
    target_flavor: Flavor,
) -> Result<Vec<String>, WorkError> {
    if source_flavor.is_mariadb() != target_flavor.is_mariadb() {
        return Ok(vec![
            "replication mode needs the same server family on both sides (MariaDB to MariaDB, MySQL to MySQL); use binlog"
                .into(),
        ]);
    }
    if !source_flavor.is_mariadb() {
        return Ok(vec![]);
    }
    // The target runs gtid_strict_mode: transactions of its own domain with
    // another server's sequence numbers would stop replication.
    let source_domain: Option<u32> =
        src.query_first("SELECT @@gtid_domain_id").await.doing(|| "reading gtid_domain_id".into())?;
    let (target_domain, pos): (u32, String) = tgt
        .query_first("SELECT @@gtid_domain_id, @@gtid_binlog_pos")
        .await
        .doing(|| "reading the target's GTID state".into())?
        .unwrap_or_default();
    let source_domain = source_domain.unwrap_or(0);
    let mut taken = replica::domains(&pos);
    taken.push(target_domain);
    Ok(if taken.contains(&source_domain) {
        vec![format!(
            "replication mode: the source's gtid_domain_id {source_domain} is also used by the target; give the source \
             its own domain (SET GLOBAL gtid_domain_id = N, and in its config) so the target's gtid_strict_mode \
             accepts its transactions"
        )]
    } else {
        vec![]
    })
}
