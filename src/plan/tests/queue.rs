//! The cap on rollouts in progress: a new canary that finds no free slot
//! waits before its first step, stable serving everything, and starts once
//! the controller says a slot is its own.

use crate::plan::QueuePlace;

use super::*;

fn queued(observed: Observed, position: usize) -> Observed {
    Observed {
        queue: Some(QueuePlace {
            position,
            cap: 2,
            in_progress: 2,
        }),
        ..observed
    }
}

/// A new revision (CANARY) released on top of a steady STABLE.
fn released() -> Observed {
    Observed {
        desired_revision: Some(CANARY.into()),
        ..steady_world(STABLE)
    }
}

#[test]
fn a_new_canary_without_a_slot_waits_before_its_first_step() {
    let spec = spec(standard_steps());
    let plan = run(&spec, &stable_status(), &queued(released(), 1), 10);
    assert!(
        plan.actions.is_empty(),
        "no canary pods, no weights: {:?}",
        plan.actions
    );
    assert_eq!(plan.status.phase, Some(RolloutPhase::Queued));
    assert_eq!(plan.status.canary_revision, None);
    assert_eq!(plan.status.queued_since, Some(time(10)));
    let progressing = condition(&plan, "Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("True", "Queued")
    );
    assert!(
        progressing.message.contains("2 of at most 2"),
        "{}",
        progressing.message
    );
    assert!(progressing.message.contains("place 1"), "{}", progressing.message);
    assert_eq!(reasons(&plan), ["Queued"]);
    assert_eq!(plan.requeue_after, Some(POLL));
}

#[test]
fn a_queued_canary_keeps_its_place_and_says_the_event_once() {
    let spec = spec(standard_steps());
    let first = run(&spec, &stable_status(), &queued(released(), 2), 10);
    let later = run(&spec, &first.status, &queued(released(), 1), 40);
    assert_eq!(
        later.status.queued_since,
        Some(time(10)),
        "waiting since the first time"
    );
    assert!(later.events.is_empty(), "{:?}", later.events);
    assert!(condition(&later, "Progressing").message.contains("place 1"));
}

#[test]
fn a_queued_canary_starts_when_its_slot_comes() {
    let spec = spec(standard_steps());
    let waiting = run(&spec, &stable_status(), &queued(released(), 1), 10);
    let plan = run(&spec, &waiting.status, &released(), 50);
    assert_eq!(plan.status.canary_revision.as_deref(), Some(CANARY));
    assert_eq!(plan.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(plan.status.queued_since, None);
    assert_eq!(plan.actions, [deploy(CANARY, 1)]);
    assert!(reasons(&plan).contains(&"NewRevision"));
}

#[test]
fn a_queued_revision_withdrawn_from_the_spec_leaves_the_queue() {
    let spec = spec(standard_steps());
    let waiting = run(&spec, &stable_status(), &queued(released(), 1), 10);
    let plan = run(&spec, &waiting.status, &steady_world(STABLE), 20);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(plan.status.queued_since, None);
}

#[test]
fn a_canary_in_flight_never_goes_back_to_the_queue() {
    let spec = spec(standard_steps());
    let status = in_flight(&spec, 1, Some(0));
    let plan = run(&spec, &status, &queued(world(&spec, 50), 1), 30);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(plan.status.current_step_index, Some(1));
}
