//! The controller's own Prometheus metrics (served at `/metrics`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::ResourceExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::Error;
use crate::api::{Rollout, RolloutStatus};
use crate::egress::OutboundCounters;

/// Reconcile-duration bucket edges, seconds: fine around the 20 ms budget so
/// the share of reconciles within it is read exactly, not interpolated.
const RECONCILE_BUCKETS: [f64; 18] = [
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutLabels {
    namespace: String,
    rollout: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: String,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Histogram,
    api_writes: Family<WriteLabels, Counter>,
    rollouts: Family<PhaseLabels, Gauge>,
    canary_weight: Family<RolloutLabels, Gauge>,
    /// Tenant calls deferred or refused (see [`crate::egress`]).
    pub outbound: OutboundCounters,
    fenced_writes: Counter,
    /// The phase each Rollout was last counted under, so the per-phase gauge
    /// moves a Rollout instead of counting it twice.
    phases: Mutex<HashMap<(String, String), String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("siskin");
        let reconciles = Counter::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Histogram::new(RECONCILE_BUCKETS);
        let api_writes = Family::<WriteLabels, Counter>::default();
        let rollouts = Family::<PhaseLabels, Gauge>::default();
        let canary_weight = Family::<RolloutLabels, Gauge>::default();
        let fenced_writes = Counter::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by error label",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_duration.clone(),
        );
        registry.register("api_writes", "API writes attempted, by kind", api_writes.clone());
        registry.register("rollouts", "Rollouts by phase", rollouts.clone());
        registry.register(
            "canary_weight_percent",
            "The canary weight Siskin wants on the route",
            canary_weight.clone(),
        );
        let outbound = OutboundCounters::default();
        outbound.register(&mut registry);
        registry.register(
            "fenced_writes",
            "Writes refused because this replica's hold on the Lease was not confirmed recently",
            fenced_writes.clone(),
        );
        Metrics {
            registry,
            outbound,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            api_writes,
            rollouts,
            canary_weight,
            fenced_writes,
            phases: Mutex::new(HashMap::new()),
        }
    }
}

fn key(rollout: &Rollout) -> (String, String) {
    (rollout.namespace().unwrap_or_default(), rollout.name_any())
}

impl Metrics {
    pub fn reconciled(&self, took: Duration, error: Option<&Error>) {
        self.reconciles.inc();
        self.reconcile_duration.observe(took.as_secs_f64());
        if let Some(e) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    error: e.metric_label().into(),
                })
                .inc();
        }
    }

    /// The counter the write fence adds its refusals to.
    pub fn fenced_writes(&self) -> Counter {
        self.fenced_writes.clone()
    }

    /// Counts one API write of `kind` (see [`Metrics::acting`] for actions).
    pub fn wrote(&self, kind: &'static str) {
        self.api_writes.get_or_create(&WriteLabels { kind }).inc();
    }

    pub fn observe_rollout(&self, rollout: &Rollout, status: &RolloutStatus) {
        let phase = status
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "Unknown".into());
        let key = key(rollout);
        self.canary_weight
            .get_or_create(&RolloutLabels {
                namespace: key.0.clone(),
                rollout: key.1.clone(),
            })
            .set(i64::from(status.canary_weight.unwrap_or(0)));
        let Ok(mut phases) = self.phases.lock() else { return };
        if let Some(old) = phases.insert(key, phase.clone()) {
            self.rollouts.get_or_create(&PhaseLabels { phase: old }).dec();
        }
        self.rollouts.get_or_create(&PhaseLabels { phase }).inc();
    }

    pub fn forget_rollout(&self, rollout: &Rollout) {
        let key = key(rollout);
        self.canary_weight.remove(&RolloutLabels {
            namespace: key.0.clone(),
            rollout: key.1.clone(),
        });
        let Ok(mut phases) = self.phases.lock() else { return };
        if let Some(old) = phases.remove(&key) {
            self.rollouts.get_or_create(&PhaseLabels { phase: old }).dec();
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
