//! The observed world, as plain data: what the controller read from the
//! cluster and the analysis before asking the engine what to do.

use crate::analysis::Verdict;
use crate::analysis::status::AnalysisStatus;
use crate::api::{ManualRequest, RequestMatch};

use super::queue::QueuePlace;

/// The traffic split between the stable and the canary backend. Gateway API
/// and Istio weights are relative; Siskin always writes two that sum to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSplit {
    pub stable: i32,
    pub canary: i32,
}

impl TrafficSplit {
    /// Everything to stable: the state before and after every rollout.
    pub const ALL_STABLE: TrafficSplit = TrafficSplit { stable: 100, canary: 0 };

    /// `weight` percent to the canary, the rest to stable.
    pub fn canary_percent(weight: i32) -> Self {
        let canary = weight.clamp(0, 100);
        TrafficSplit {
            stable: 100 - canary,
            canary,
        }
    }

    /// The canary's share in percent, rounded down; `None` when both weights
    /// are zero (the data plane then returns errors for the route).
    pub fn canary_share(&self) -> Option<i32> {
        let total = i64::from(self.stable.max(0)) + i64::from(self.canary.max(0));
        if total == 0 {
            return None;
        }
        i32::try_from(i64::from(self.canary.max(0)) * 100 / total).ok()
    }
}

/// What the traffic router found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteState {
    /// The route object does not exist.
    NotFound,
    /// The route exists but no rule sends traffic to both the stable and
    /// the canary Service, so there is nothing Siskin could shift.
    MissingBackends { message: String },
    /// The route has rules with both backends.
    Present {
        /// The weights of the two backends; `None` when rules disagree.
        split: Option<TrafficSplit>,
        /// Whether the data plane accepted the route's current generation.
        accepted: bool,
        /// The request matches of Siskin's own match rule (A/B tests), if
        /// the route has that rule.
        matches: Option<Vec<RequestMatch>>,
        /// The share of traffic mirrored to the canary, in percent, if the
        /// route mirrors to it.
        mirror: Option<i32>,
    },
}

/// One Siskin-owned Deployment (one revision of the pod template).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionState {
    pub revision: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
    /// Whether the Deployment controller has observed the latest spec
    /// (`status.observedGeneration >= metadata.generation`); until then its
    /// availability describes an older spec.
    pub current: bool,
}

impl RevisionState {
    /// Whether exactly `replicas` pods are wanted and all are available.
    pub fn is_available_at(&self, replicas: i32) -> bool {
        self.current && self.replicas == replicas && self.available_replicas >= replicas
    }
}

/// The revision each Siskin-managed Service selects; `None` when the Service
/// is missing or selects no revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSelectors {
    pub stable: Option<String>,
    pub canary: Option<String>,
}

/// Everything the engine needs to know about the world.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The Rollout's `metadata.generation`.
    pub generation: Option<i64>,
    /// The revision of the pod template the spec asks for (see
    /// [`crate::api::revision_hash`]); `None` when it cannot be read, e.g.
    /// the `workloadRef` Deployment does not exist.
    pub desired_revision: Option<String>,
    /// Every Siskin-owned Deployment of this Rollout.
    pub revisions: Vec<RevisionState>,
    /// The label selector every revision's pods match, for the `scale`
    /// subresource (see [`crate::api::RolloutStatus::selector`]).
    pub pod_selector: Option<String>,
    pub services: ServiceSelectors,
    /// The route, when a traffic router is configured; `None` otherwise.
    pub route: Option<RouteState>,
    /// The combined analysis verdict for the canary of `desired_revision`
    /// (never one left over from a previous canary), if there is one yet.
    pub verdict: Option<Verdict>,
    /// The analysis evaluated for this reconcile, whose combined verdict is
    /// `verdict`: recorded in the status while it is about the current
    /// canary.
    pub analysis: Option<AnalysisStatus>,
    /// The latest manual request found on the Rollout.
    pub request: Option<ManualRequest>,
    /// `spec.replicas` of the `workloadRef` Deployment, when there is one.
    pub workload_ref_replicas: Option<i32>,
    /// The answers of the webhook calls made for this reconcile (see
    /// [`super::due_hooks`]).
    pub hooks: Vec<HookResult>,
    /// Where a new canary waits for a rollout slot; `None` when it may
    /// start (see [`super::queue_place`]).
    pub queue: Option<QueuePlace>,
    /// Objects the spec would have Siskin take over although Siskin did not
    /// create them and nobody opted them in (see
    /// [`crate::api::ADOPT_ANNOTATION`]), each as a sentence naming it.
    pub not_adopted: Vec<String>,
}

/// What one call answered, as the controller saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookOutcome {
    /// A 2xx answer.
    Yes { code: u16 },
    /// Any other HTTP answer; `body` is its start, for humans.
    No { code: u16, body: String },
    /// No answer: timeout, connection refused, bad URL.
    Failed { message: String },
}

/// The answer to one call of the webhook `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookResult {
    pub name: String,
    pub outcome: HookOutcome,
}

impl Observed {
    /// The Deployment of a revision, if it exists.
    pub fn revision(&self, revision: &str) -> Option<&RevisionState> {
        self.revisions.iter().find(|r| r.revision == revision)
    }

    /// Whether the route has Siskin's match rule, sending matching
    /// requests to the canary.
    pub fn has_matches(&self) -> bool {
        matches!(&self.route, Some(RouteState::Present { matches: Some(_), .. }))
    }

    /// The share of traffic the route mirrors to the canary, if any.
    pub fn mirror(&self) -> Option<i32> {
        match &self.route {
            Some(RouteState::Present { mirror, .. }) => *mirror,
            _ => None,
        }
    }

    /// The split on the route, when it is known.
    pub fn split(&self) -> Option<TrafficSplit> {
        match &self.route {
            Some(RouteState::Present { split, .. }) => *split,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_percent_splits_one_hundred() {
        assert_eq!(
            TrafficSplit::canary_percent(10),
            TrafficSplit { stable: 90, canary: 10 }
        );
        assert_eq!(TrafficSplit::canary_percent(0), TrafficSplit::ALL_STABLE);
        assert_eq!(TrafficSplit::canary_percent(150).canary, 100);
    }

    #[test]
    fn canary_share_reads_relative_weights() {
        let split = TrafficSplit { stable: 3, canary: 1 };
        assert_eq!(split.canary_share(), Some(25));
        let dead = TrafficSplit { stable: 0, canary: 0 };
        assert_eq!(dead.canary_share(), None);
    }
}
