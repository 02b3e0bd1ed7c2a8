//! What the engine decides: actions on the world, the status to write, when
//! to look again, and the Events to publish.

use std::time::Duration;

use crate::api::{RequestMatch, RolloutStatus};

use super::observed::{RouteState, TrafficSplit};

/// One change to the world. The controller applies a plan's actions in order
/// and stops at the first failure (the next reconcile plans again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create or update (server-side apply) the Deployment running the
    /// spec's *current* pod template, labelled with this revision, at
    /// `replicas`. Only ever emitted for `Observed::desired_revision`.
    Deploy { revision: String, replicas: i32 },
    /// Set `spec.replicas` of an existing revision's Deployment (its
    /// template may no longer be in the spec, so it is never re-applied).
    Scale { revision: String, replicas: i32 },
    /// Point the `<service>-stable` and `<service>-canary` Services at these
    /// revisions, creating them if needed.
    SelectRevisions { stable: String, canary: String },
    /// Point only the `<service>-stable` Service at this revision: the
    /// blue/green switch without a router, and its rollback, in one write.
    SelectStable { revision: String },
    /// One write to the route: the weights of the stable and canary
    /// backends, guarded by JSON Patch `test` operations.
    SetWeights(TrafficSplit),
    /// One write to the route: add (or replace) Siskin's one named rule
    /// sending requests with these matches to the canary, or remove it
    /// (`None`). The user's rules are never rewritten.
    SetMatches(Option<Vec<RequestMatch>>),
    /// One write to the route: mirror this share of traffic (percent) to
    /// the canary, or stop mirroring (`None`).
    SetMirror(Option<i32>),
    /// Scale the user's `workloadRef` Deployment to zero: Siskin's own
    /// Deployment of the same template serves now.
    ScaleDownWorkloadRef,
}

/// Whether an Event reports normal progress or something to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// A Kubernetes Event to publish on the Rollout. Only transitions produce
/// Events, so an idle reconcile publishes none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEvent {
    pub kind: EventKind,
    /// CamelCase, e.g. `StepCompleted`, `Aborted`.
    pub reason: &'static str,
    pub message: String,
}

/// The engine's answer for one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// In order. At most one `SetWeights`: one route write per plan.
    pub actions: Vec<Action>,
    /// The complete status to write. Equal to the current status when
    /// nothing changed (timestamps are only touched on transitions), so the
    /// controller can skip the write.
    pub status: RolloutStatus,
    /// When to reconcile again even if nothing changes; `None` to wait for
    /// the next watch event (e.g. a manual request while paused).
    pub requeue_after: Option<Duration>,
    pub events: Vec<PlanEvent>,
}

impl Plan {
    /// Whether the plan changes nothing in the world.
    pub fn is_idle(&self) -> bool {
        self.actions.is_empty()
    }

    /// The weights this plan writes, if it writes the route.
    pub fn weights(&self) -> Option<TrafficSplit> {
        self.actions.iter().find_map(|a| match a {
            Action::SetWeights(split) => Some(*split),
            _ => None,
        })
    }
}

/// The route writes that send every request back to stable and remove all
/// Siskin put on the route for a canary: the weights, the match rule and
/// the mirror, in that order (the users' share first). Empty when the route
/// has none of them, or is not there to write. The one place this is
/// decided: an abort, a promotion, the steady state, a superseded canary,
/// a re-pointed canary Service and a deleted Rollout all clear through it.
pub fn clear_canary_traffic(route: Option<&RouteState>) -> Vec<Action> {
    let Some(RouteState::Present {
        split, matches, mirror, ..
    }) = route
    else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    if *split != Some(TrafficSplit::ALL_STABLE) {
        actions.push(Action::SetWeights(TrafficSplit::ALL_STABLE));
    }
    if matches.is_some() {
        actions.push(Action::SetMatches(None));
    }
    if mirror.is_some() {
        actions.push(Action::SetMirror(None));
    }
    actions
}
