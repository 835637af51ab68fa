//! Prometheus metrics of the operator.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: IntCounterVec,
    pub failures: IntCounterVec,
    pub duration: HistogramVec,
    pub leader: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("switchyard".into()), None).expect("static registry prefix is valid");
        let reconciles = IntCounterVec::new(Opts::new("reconciles_total", "Reconciles run, per kind"), &["kind"])
            .expect("static metric definition");
        let failures = IntCounterVec::new(
            Opts::new("reconcile_failures_total", "Reconciles that returned an error, per kind and error label"),
            &["kind", "error"],
        )
        .expect("static metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Time spent in one reconcile, per kind")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["kind"],
        )
        .expect("static metric definition");
        let leader =
            IntGauge::new("leader", "1 while this instance holds the leader Lease").expect("static metric definition");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self { registry, reconciles, failures, duration, leader }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_labelled_series() {
        let m = super::Metrics::new();
        m.reconciles.with_label_values(&["OnlineDDL"]).inc();
        m.failures.with_label_values(&["OnlineDDL", "kube"]).inc();
        m.leader.set(1);
        let text = m.render();
        assert!(text.contains(r#"switchyard_reconciles_total{kind="OnlineDDL"} 1"#), "{text}");
        assert!(text.contains(r#"switchyard_reconcile_failures_total{error="kube",kind="OnlineDDL"} 1"#), "{text}");
        assert!(text.contains("switchyard_leader 1"), "{text}");
    }
}
