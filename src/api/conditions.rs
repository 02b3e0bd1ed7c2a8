//! Standard Kubernetes conditions on `Rollout.status.conditions`, so that
//! `kubectl wait --for=condition=Healthy rollout/x` works, and kstatus
//! (Flux's health checks) reads a Rollout right: with `observedGeneration`
//! equal to the generation, `Reconciling=True` is in progress,
//! `Stalled=True` is failed, and neither is current.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types Siskin sets on every Rollout.
pub mod types {
    /// True while a canary moves through its steps; False when stuck (reason
    /// says why) or when nothing is in flight.
    pub const PROGRESSING: &str = "Progressing";
    /// True when one revision serves all traffic and is fully available.
    pub const HEALTHY: &str = "Healthy";
    /// True while waiting for a human.
    pub const PAUSED: &str = "Paused";
    /// True once the canary was rolled back.
    pub const ABORTED: &str = "Aborted";
    /// True when the spec cannot be acted on.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// True while the Rollout has not reached the state its spec asks for
    /// and nothing stops it getting there (a canary in flight, paused or
    /// queued, pods or a route being put right). kstatus, which Flux and
    /// `kubectl wait`-style tools use, reads it as "in progress".
    pub const RECONCILING: &str = "Reconciling";
    /// True when the Rollout cannot get there without a human: aborted, or
    /// a spec that cannot be acted on. kstatus reads it as "failed".
    pub const STALLED: &str = "Stalled";

    /// Every type, in the order they are written.
    pub const ALL: [&str; 7] = [
        PROGRESSING,
        HEALTHY,
        PAUSED,
        ABORTED,
        INVALID_SPEC,
        RECONCILING,
        STALLED,
    ];
}

/// The `reason` of each condition: one CamelCase word the API server
/// accepts, which `kubectl wait`, dashboards and alerts match on, so each is
/// written here once and used by name everywhere.
pub mod reasons {
    // What the Rollout is doing (Progressing, and Healthy, Reconciling,
    // Stalled or InvalidSpec while it applies).
    /// The first revision's pods are starting; it becomes stable when ready.
    pub const FIRST_REVISION: &str = "FirstRevision";
    /// The spec went back to stable: the canary's pods are walked back first.
    pub const RESTARTING_FROM_STABLE: &str = "RestartingFromStable";
    /// One revision serves all traffic and is fully available.
    pub const STABLE: &str = "Stable";
    /// The stable revision's pods are not all available yet.
    pub const WAITING_FOR_STABLE: &str = "WaitingForStable";
    /// The stable revision's Deployment is gone.
    pub const STABLE_MISSING: &str = "StableMissing";
    /// The `-stable`/`-canary` Services are being pointed at their revisions.
    pub const SELECTING_REVISIONS: &str = "SelectingRevisions";
    /// Route weights, matches or the mirror are being written.
    pub const SHIFTING_TRAFFIC: &str = "ShiftingTraffic";
    /// The canary's share goes back to stable before its Service switches.
    pub const CLEARING_CANARY_TRAFFIC: &str = "ClearingCanaryTraffic";
    /// The route was written; the gateway has not accepted it yet.
    pub const AWAITING_DATA_PLANE: &str = "AwaitingDataPlane";
    /// The route the spec names does not exist.
    pub const ROUTE_NOT_FOUND: &str = "RouteNotFound";
    /// The route exists but does not reference both Services.
    pub const ROUTE_MISSING_BACKENDS: &str = "RouteMissingBackends";
    /// The canary's Deployment is being created.
    pub const STARTING_CANARY: &str = "StartingCanary";
    /// The canary's pods are not all available yet.
    pub const WAITING_FOR_CANARY: &str = "WaitingForCanary";
    /// Stable is scaled back to full size.
    pub const SCALING_STABLE: &str = "ScalingStable";
    /// A rolling update replaces the pods in place.
    pub const ROLLING_UPDATE: &str = "RollingUpdate";
    /// Waiting for a slot under the cap on rollouts in progress.
    pub const QUEUED: &str = "Queued";
    /// A step's minimum hold has not passed.
    pub const HOLDING: &str = "Holding";
    /// A step waits for a conclusive analysis.
    pub const AWAITING_ANALYSIS: &str = "AwaitingAnalysis";
    /// A gate webhook is being called or retried.
    pub const AWAITING_WEBHOOK: &str = "AwaitingWebhook";
    /// A `confirmPromotion` webhook said no; it is asked again.
    pub const AWAITING_CONFIRMATION: &str = "AwaitingConfirmation";
    /// Blue/green: the active Service switched; the preview window runs.
    pub const SWITCHED: &str = "Switched";
    /// The canary grows to full size before it becomes stable.
    pub const PROMOTING: &str = "Promoting";
    /// The canary became stable.
    pub const PROMOTED: &str = "Promoted";
    /// The rollout waits for a human (see the Paused condition's reason).
    pub const PAUSED: &str = "Paused";
    /// The canary was rolled back.
    pub const ABORTED: &str = "Aborted";
    /// The workloadRef Deployment's pod template cannot be read yet.
    pub const POD_TEMPLATE_UNAVAILABLE: &str = "PodTemplateUnavailable";
    /// The spec cannot be acted on.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The spec names objects Siskin did not create and nobody opted in.
    pub const ADOPTION_REQUIRED: &str = "AdoptionRequired";
    /// Nothing to do.
    pub const IDLE: &str = "Idle";

    // Why the Rollout is paused (Paused) or was aborted (Aborted): the
    // `PauseReason` and `AbortReason` of its status.
    /// A `pause: {}` step waits for `siskin promote`.
    pub const PAUSE_STEP: &str = "PauseStep";
    /// `siskin pause` or `siskin abort`.
    pub const MANUAL: &str = "Manual";
    /// The analysis could not conclude.
    pub const INCONCLUSIVE: &str = "Inconclusive";
    /// A gate webhook kept failing.
    pub const WEBHOOK: &str = "Webhook";
    /// The analysis found the canary worse than stable.
    pub const REGRESSION: &str = "Regression";

    // A condition that does not hold, and nothing to say why.
    pub const NOT_PAUSED: &str = "NotPaused";
    pub const NOT_ABORTED: &str = "NotAborted";
    pub const NOT_STALLED: &str = "NotStalled";
    pub const VALID: &str = "Valid";
    pub const RECONCILED: &str = "Reconciled";

    /// Every reason, so tests can check them all.
    pub const ALL: &[&str] = &[
        FIRST_REVISION,
        RESTARTING_FROM_STABLE,
        STABLE,
        WAITING_FOR_STABLE,
        STABLE_MISSING,
        SELECTING_REVISIONS,
        SHIFTING_TRAFFIC,
        CLEARING_CANARY_TRAFFIC,
        AWAITING_DATA_PLANE,
        ROUTE_NOT_FOUND,
        ROUTE_MISSING_BACKENDS,
        STARTING_CANARY,
        WAITING_FOR_CANARY,
        SCALING_STABLE,
        ROLLING_UPDATE,
        QUEUED,
        HOLDING,
        AWAITING_ANALYSIS,
        AWAITING_WEBHOOK,
        AWAITING_CONFIRMATION,
        SWITCHED,
        PROMOTING,
        PROMOTED,
        PAUSED,
        ABORTED,
        POD_TEMPLATE_UNAVAILABLE,
        INVALID_SPEC,
        ADOPTION_REQUIRED,
        IDLE,
        PAUSE_STEP,
        MANUAL,
        INCONCLUSIVE,
        WEBHOOK,
        REGRESSION,
        NOT_PAUSED,
        NOT_ABORTED,
        NOT_STALLED,
        VALID,
        RECONCILED,
    ];
}

pub const TRUE: &str = "True";
pub const FALSE: &str = "False";

/// The wanted state of one condition, before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionState {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl ConditionState {
    pub fn new(type_: &'static str, status: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        ConditionState {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Sets a condition, keeping `lastTransitionTime` unless the status flips.
/// Writing an unchanged condition leaves the list byte-for-byte identical, so
/// the controller can skip the status write and never churns its own watch.
pub fn set_condition(conditions: &mut Vec<Condition>, wanted: ConditionState, generation: Option<i64>, now: Time) {
    let status = if wanted.status { TRUE } else { FALSE };
    let existing = conditions.iter_mut().find(|c| c.type_ == wanted.type_);
    match existing {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now;
            }
            c.status = status.to_string();
            c.reason = wanted.reason;
            c.message = wanted.message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: wanted.type_.to_string(),
            status: status.to_string(),
            reason: wanted.reason,
            message: wanted.message,
            observed_generation: generation,
            last_transition_time: now,
        }),
    }
}

/// The condition of the given type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of the given type is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    /// metav1.Condition's pattern for `reason`: the API server refuses a
    /// status write whose reason does not match it.
    #[test]
    fn every_reason_is_one_word_the_api_server_accepts() {
        for reason in reasons::ALL {
            let mut chars = reason.chars();
            let first = chars.next().is_some_and(|c| c.is_ascii_uppercase());
            let rest = chars.all(|c| c.is_ascii_alphanumeric());
            assert!(first && rest && reason.len() <= 1024, "{reason:?}");
        }
        let mut unique = reasons::ALL.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), reasons::ALL.len(), "a reason is listed twice");
    }

    #[test]
    fn pause_and_abort_reasons_are_condition_reasons() {
        use crate::api::{AbortReason, PauseReason};
        let pauses = [
            PauseReason::PauseStep,
            PauseReason::Manual,
            PauseReason::Inconclusive,
            PauseReason::Webhook,
        ];
        let aborts = [
            AbortReason::Regression,
            AbortReason::Inconclusive,
            AbortReason::Manual,
            AbortReason::Webhook,
        ];
        let all = pauses
            .map(PauseReason::as_str)
            .into_iter()
            .chain(aborts.map(AbortReason::as_str));
        for reason in all {
            assert!(reasons::ALL.contains(&reason), "{reason}");
        }
    }

    #[test]
    fn keeps_transition_time_when_status_does_not_change() {
        let mut conditions = Vec::new();
        let healthy = |msg: &str| ConditionState::new(types::HEALTHY, true, reasons::STABLE, msg);
        set_condition(&mut conditions, healthy("a"), Some(1), at(10));
        set_condition(&mut conditions, healthy("b"), Some(2), at(20));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(conditions[0].message, "b");
        assert_eq!(conditions[0].observed_generation, Some(2));
    }

    #[test]
    fn moves_transition_time_when_status_flips() {
        let mut conditions = Vec::new();
        let paused = |on| ConditionState::new(types::PAUSED, on, reasons::PAUSE_STEP, "");
        set_condition(&mut conditions, paused(true), None, at(10));
        set_condition(&mut conditions, paused(false), None, at(20));
        assert_eq!(conditions[0].last_transition_time, at(20));
        assert!(!is_true(&conditions, types::PAUSED));
    }
}
