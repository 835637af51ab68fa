//! Leader election on a Lease, so that of several operator replicas exactly
//! one acts. A replica that cannot prove it still holds the Lease stops
//! acting before another replica may take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Seconds a Lease stays valid after its last renewal.
pub const LEASE_SECONDS: u64 = 15;
/// The holder renews this many seconds before expiry.
pub const GRACE_SECONDS: u64 = 5;

pub struct Leadership {
    rx: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    api: Api<Lease>,
    name: String,
    identity: String,
}

impl Leadership {
    pub async fn start(client: kube::Client, namespace: &str, name: &str, identity: &str) -> anyhow::Result<Self> {
        let manager = LeaseManagerBuilder::new(client.clone(), name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .build()
            .await?;
        let (rx, task) = manager.watch().await;
        Ok(Self { rx, task, api: Api::namespaced(client, namespace), name: name.into(), identity: identity.into() })
    }

    /// Resolves once this instance holds the Lease.
    pub async fn acquired(&mut self) -> anyhow::Result<()> {
        self.rx.wait_for(|leader| *leader).await?;
        Ok(())
    }

    /// Resolves when leadership is lost or can no longer be confirmed. The
    /// lease manager only notices a new holder once it can read the Lease; if
    /// the API is unreachable, another replica may already have taken over,
    /// so the watchdog gives up when it has not seen its own valid renewal
    /// for longer than a holder may go without renewing.
    pub async fn lost(&self) -> String {
        let mut rx = self.rx.clone();
        let notified = async move {
            let _ = rx.wait_for(|leader| !*leader).await;
            "another instance holds the Lease".to_string()
        };
        let watchdog = async {
            let budget = Duration::from_secs(LEASE_SECONDS - GRACE_SECONDS);
            let mut last_confirmed = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match self.api.get(&self.name).await {
                    Ok(lease) if holds(&lease, &self.identity, jiff::Timestamp::now()) => {
                        last_confirmed = Instant::now()
                    }
                    Ok(_) => return "the Lease names another holder or has expired".to_string(),
                    Err(e) if last_confirmed.elapsed() > budget => {
                        return format!("could not confirm the Lease for {}s: {e}", budget.as_secs());
                    }
                    Err(_) => {}
                }
            }
        };
        tokio::select! {
            why = notified => why,
            why = watchdog => why,
        }
    }

    /// Gives the Lease up so a successor need not wait for it to expire.
    pub async fn release(self) {
        drop(self.rx);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not release the leader Lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
            Err(_) => tracing::warn!("timed out releasing the leader Lease"),
        }
    }
}

/// Whether `lease` names `identity` as holder and has not expired at `now`.
pub fn holds(lease: &Lease, identity: &str, now: jiff::Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return false };
    if spec.holder_identity.as_deref() != Some(identity) {
        return false;
    }
    let (Some(renewed), Some(duration)) = (&spec.renew_time, spec.lease_duration_seconds) else { return false };
    renewed.0 + jiff::SignedDuration::from_secs(i64::from(duration)) > now
}

/// A stable, unique identity: the pod name in a cluster, else host and pid.
pub fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed: &str, secs: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed.parse().unwrap())),
                lease_duration_seconds: Some(secs),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn holding_needs_identity_and_an_unexpired_renewal() {
        let now: jiff::Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        assert!(holds(&lease("a", "2026-01-01T00:00:00Z", 15), "a", now));
        assert!(!holds(&lease("b", "2026-01-01T00:00:00Z", 15), "a", now));
        assert!(!holds(&lease("a", "2026-01-01T00:00:00Z", 5), "a", now));
        assert!(!holds(&Lease::default(), "a", now));
    }
}
