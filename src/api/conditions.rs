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

    #[test]
    fn keeps_transition_time_when_status_does_not_change() {
        let mut conditions = Vec::new();
        let healthy = |msg: &str| ConditionState::new(types::HEALTHY, true, "Stable", msg);
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
        let paused = |on| ConditionState::new(types::PAUSED, on, "PauseStep", "");
        set_condition(&mut conditions, paused(true), None, at(10));
        set_condition(&mut conditions, paused(false), None, at(20));
        assert_eq!(conditions[0].last_transition_time, at(20));
        assert!(!is_true(&conditions, types::PAUSED));
    }
}
