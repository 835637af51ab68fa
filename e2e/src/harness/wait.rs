//! Waiting for the cluster to reach a state. Tests never sleep and hope: they
//! poll a condition with a deadline and fail with what they last saw.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::anyhow;

/// An error a wait must not sit out: the awaited state can no longer come
/// (a resource reached Failed). `wait_until` returns it at once.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Hopeless(pub String);

/// Poll `check` every `poll` until it returns Some, or fail after `timeout`.
/// Errors from `check` count as "not yet" (the cluster may be mid-change);
/// the last one is reported on timeout. A [`Hopeless`] error ends the wait
/// at once.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) if e.is::<Hopeless>() => return Err(e.context(format!("waiting for {what}"))),
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(timed_out(what, timeout, last_error));
        }
        std::thread::sleep(poll);
    }
}

/// `wait_until` for checks that are async (database queries).
pub async fn wait_until_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()).max(poll), check()).await {
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => last_error = Some(anyhow!("the check itself did not finish")),
        }
        if Instant::now() >= deadline {
            return Err(timed_out(what, timeout, last_error));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Waits until `count()` has grown by `more` (a writer's acknowledged
/// commits, say), failing after `timeout`.
pub async fn count_grows(what: &str, count: impl Fn() -> u64, more: u64, timeout: Duration) -> anyhow::Result<()> {
    let target = count() + more;
    let deadline = Instant::now() + timeout;
    while count() < target {
        anyhow::ensure!(Instant::now() < deadline, "{what} made no progress within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Assert that `check` holds at every poll for the whole `window`: for
/// "stays Pending" style claims.
pub fn holds_for(
    what: &str,
    window: Duration,
    poll: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let end = Instant::now() + window;
    while Instant::now() < end {
        anyhow::ensure!(check()?, "{what} stopped holding");
        std::thread::sleep(poll);
    }
    Ok(())
}

fn timed_out(what: &str, timeout: Duration, last_error: Option<anyhow::Error>) -> anyhow::Error {
    match last_error {
        Some(e) => anyhow!("timed out after {timeout:?} waiting for {what}; last error: {e:#}"),
        None => anyhow!("timed out after {timeout:?} waiting for {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hopeless_error_ends_the_wait_at_once() {
        let started = Instant::now();
        let r: anyhow::Result<()> = wait_until("never", Duration::from_secs(30), Duration::from_millis(10), || {
            Err(Hopeless("it failed".into()).into())
        });
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(format!("{:#}", r.unwrap_err()).contains("it failed"));
    }

    #[test]
    fn returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let got = wait_until("three calls", Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            Ok((calls == 3).then_some(calls))
        })
        .unwrap();
        assert_eq!(got, 3);
    }

    #[test]
    fn times_out_with_the_last_error() {
        let err = wait_until::<()>("never", Duration::from_millis(20), Duration::from_millis(5), || {
            Err(anyhow!("still broken"))
        })
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("never") && text.contains("still broken"), "{text}");
    }

    #[test]
    fn holds_for_fails_when_the_claim_breaks() {
        let mut n = 0;
        let r = holds_for("n < 3", Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            Ok(n < 3)
        });
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn async_variant() {
        let mut n = 0;
        let got = wait_until_async("n", Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            let v = n;
            async move { Ok((v >= 2).then_some(v)) }
        })
        .await
        .unwrap();
        assert_eq!(got, 2);
    }
}
