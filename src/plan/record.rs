//! Which status changes are worth a write now. Every status write is an API
//! write, and a release passes through many short-lived states (pods
//! starting, Services re-pointed, a route waiting for the data plane) whose
//! notes users see only if they last. Those notes, and figures read back
//! from the world, are written once they have stood for [`NOTE_DELAY`]
//! since the last write, or with the next write that must happen anyway.
//! Everything the engine decides from is written at once.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::RolloutStatus;
use crate::api::conditions::reasons;

/// How long a passing note waits for the next status write before it is
/// written by itself. Long enough that a fleet-wide release, whose pods and
/// routes all wait on one busy API server, does not add a write per Rollout
/// for every passing state; short enough that a wait that matters (pods
/// that do not start) shows within half a minute.
pub const NOTE_DELAY: Duration = Duration::from_secs(30);

/// Reasons of the states a healthy release passes through on its own. A
/// change from one to another only retells progress the next decision
/// records anyway; a change to any other reason (a missing route, a pause,
/// an abort) is news and is written at once.
const PASSING: &[&str] = &[
    reasons::STARTING_CANARY,
    reasons::WAITING_FOR_CANARY,
    reasons::SELECTING_REVISIONS,
    reasons::SHIFTING_TRAFFIC,
    reasons::CLEARING_CANARY_TRAFFIC,
    reasons::AWAITING_DATA_PLANE,
    reasons::SCALING_STABLE,
    reasons::WAITING_FOR_STABLE,
    reasons::ROLLING_UPDATE,
    reasons::HOLDING,
    reasons::AWAITING_ANALYSIS,
    reasons::PROMOTING,
    reasons::PROMOTED,
    reasons::STABLE,
];

/// When to write a plan's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusWrite {
    /// Nothing changed.
    Unchanged,
    /// Write now: the change is one the engine decides from, or news.
    Now,
    /// Only passing notes or figures changed; write once `NOTE_DELAY` has
    /// passed since the last write, i.e. after this long.
    After(Duration),
}

/// Whether `after` must be written now, given the stored status `before`
/// and the time since this Rollout's status was last written (`None`: not
/// known, e.g. after a restart).
pub fn status_write(
    before: Option<&RolloutStatus>,
    after: &RolloutStatus,
    since_written: Option<Duration>,
) -> StatusWrite {
    let Some(before) = before else {
        return StatusWrite::Now;
    };
    if before == after {
        return StatusWrite::Unchanged;
    }
    if !only_notes_differ(before, after) {
        return StatusWrite::Now;
    }
    match since_written {
        Some(since) if since < NOTE_DELAY => StatusWrite::After(NOTE_DELAY - since),
        _ => StatusWrite::Now,
    }
}

/// Whether the two statuses differ only in what the engine never decides
/// from: the message, the pod count and the weight read back from the
/// route, and conditions that keep their status and move between passing
/// reasons.
fn only_notes_differ(before: &RolloutStatus, after: &RolloutStatus) -> bool {
    let decided = |s: &RolloutStatus| RolloutStatus {
        message: None,
        replicas: None,
        observed_canary_weight: None,
        conditions: Vec::new(),
        ..s.clone()
    };
    decided(before) == decided(after)
        && before.conditions.len() == after.conditions.len()
        && before
            .conditions
            .iter()
            .zip(&after.conditions)
            .all(|(b, a)| same_standing(b, a))
}

/// The same condition, standing as it did: only a passing reason, or the
/// message of one, moved. A new message under any other reason (other
/// problems with the spec, say) is news.
fn same_standing(before: &Condition, after: &Condition) -> bool {
    let passing = |reason: &str| PASSING.contains(&reason);
    let same_words = before.reason == after.reason && before.message == after.message;
    before.type_ == after.type_
        && before.status == after.status
        && before.observed_generation == after.observed_generation
        && before.last_transition_time == after.last_transition_time
        && (same_words || (passing(&before.reason) && passing(&after.reason)))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::RolloutPhase;

    fn condition(reason: &str, status: &str) -> Condition {
        Condition {
            type_: "Progressing".into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{reason} now"),
            observed_generation: Some(2),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    fn status(reason: &str, message: &str) -> RolloutStatus {
        RolloutStatus {
            phase: Some(RolloutPhase::Progressing),
            current_step_index: Some(0),
            message: Some(message.into()),
            conditions: vec![condition(reason, "True")],
            ..RolloutStatus::default()
        }
    }

    const SOON: Option<Duration> = Some(Duration::from_secs(3));

    #[test]
    fn a_passing_note_waits_for_the_next_write_or_its_delay() {
        let before = status(reasons::WAITING_FOR_CANARY, "waiting for canary: 0/1 pods available");
        let after = status(reasons::SELECTING_REVISIONS, "pointing the Services");
        assert_eq!(
            status_write(Some(&before), &after, SOON),
            StatusWrite::After(Duration::from_secs(27))
        );
        assert_eq!(status_write(Some(&before), &after, Some(NOTE_DELAY)), StatusWrite::Now);
        assert_eq!(
            status_write(Some(&before), &after, None),
            StatusWrite::Now,
            "after a restart"
        );
    }

    #[test]
    fn pod_counts_and_weights_read_back_are_passing_figures() {
        let before = status(reasons::HOLDING, "holding");
        let after = RolloutStatus {
            replicas: Some(11),
            observed_canary_weight: Some(10),
            ..before.clone()
        };
        assert!(matches!(
            status_write(Some(&before), &after, SOON),
            StatusWrite::After(_)
        ));
    }

    #[test]
    fn what_the_engine_decides_from_is_written_at_once() {
        let before = status(reasons::HOLDING, "holding");
        let next_step = RolloutStatus {
            current_step_index: Some(1),
            ..before.clone()
        };
        assert_eq!(status_write(Some(&before), &next_step, SOON), StatusWrite::Now);
        let flipped = RolloutStatus {
            conditions: vec![condition(reasons::HOLDING, "False")],
            ..before.clone()
        };
        assert_eq!(status_write(Some(&before), &flipped, SOON), StatusWrite::Now);
        assert_eq!(status_write(None, &before, SOON), StatusWrite::Now, "a first status");
        assert_eq!(status_write(Some(&before), &before, SOON), StatusWrite::Unchanged);
    }

    #[test]
    fn news_is_written_at_once() {
        let before = status(reasons::SHIFTING_TRAFFIC, "shifting");
        for news in [
            reasons::ROUTE_NOT_FOUND,
            reasons::PAUSED,
            reasons::ABORTED,
            reasons::QUEUED,
        ] {
            let after = status(news, "news");
            assert_eq!(status_write(Some(&before), &after, SOON), StatusWrite::Now, "{news}");
        }
        let invalid = status(reasons::INVALID_SPEC, "steps: weight 120 is over 100");
        let mut other_problem = invalid.clone();
        other_problem.conditions[0].message = "service: port 0".into();
        assert_eq!(status_write(Some(&invalid), &other_problem, SOON), StatusWrite::Now);
    }
}
