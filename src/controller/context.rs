//! What every reconcile shares, and the names Siskin writes under.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::Recorder;

use super::metrics::Metrics;
use super::observe::OwnedObjects;
use super::{health, queue};
use crate::egress::Egress;

/// The field manager of every object and status Siskin writes.
pub const FIELD_MANAGER: &str = "siskin";
/// The finalizer that lets a deleted Rollout hand traffic back first.
pub const FINALIZER: &str = "siskin.io/cleanup";

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// Siskin's own Deployments and Services, as the watches keep them.
    pub owned: OwnedObjects,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub health: Arc<health::Health>,
    /// Per Rollout (`namespace/name`), the resourceVersion our last status
    /// write replaced. A reconcile that finds the cache still at it would
    /// plan from a status we already moved past; it waits for the watch.
    pub superseded: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Per Rollout, when this replica last wrote its status: passing notes
    /// wait for the next write until [`crate::plan::NOTE_DELAY`] has passed.
    pub status_written: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// The client for every call a Rollout or template chooses the
    /// destination of (webhooks, metric queries).
    pub egress: Arc<Egress>,
    /// The cap on rollouts in progress across the Rollouts served.
    pub queue: queue::RolloutQueue,
    /// The controller's own namespace (its Lease's): ClusterAnalysisTemplates
    /// read their Secrets here.
    pub home_namespace: String,
}
