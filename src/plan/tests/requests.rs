//! Manual requests from the CLI, recorded on the Rollout.

use super::*;

fn with_request(observed: Observed, action: RequestedAction) -> Observed {
    Observed {
        request: request(action, 1),
        ..observed
    }
}

/// `observed` with a request to `action` that names the revision it is
/// meant for.
fn with_request_for(observed: Observed, action: RequestedAction, revision: &str) -> Observed {
    Observed {
        request: Some(ManualRequest::new(action, at(1), Some(revision))),
        ..observed
    }
}

#[test]
fn promote_request_ends_a_pause_step() {
    let spec = spec(standard_steps());
    let paused = run(&spec, &in_flight(&spec, 2, None), &world(&spec, 50), 0);
    let observed = with_request(world(&spec, 50), RequestedAction::Promote);
    let plan = run(&spec, &paused.status, &observed, 10);
    assert_eq!(plan.status.pause, None);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Promoting));
    assert_eq!(plan.actions, [deploy(CANARY, REPLICAS)]);
    let handled = plan.status.requests.last().map(|r| r.outcome.as_str());
    assert_eq!(handled, Some("step 3 completed by request"));
}

#[test]
fn promote_request_skips_the_rest_of_a_hold() {
    let spec = spec(standard_steps());
    let plan = at_step(&spec, 0, 5, |world| with_request(world, RequestedAction::Promote));
    assert_eq!(plan.status.current_step_index, Some(1));
}

#[test]
fn promote_full_skips_remaining_steps() {
    let spec = spec(standard_steps());
    let mut observed = with_request(world(&spec, 10), RequestedAction::PromoteFull);
    observed.revisions[1] = ready(CANARY, REPLICAS);
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 5);
    assert_eq!(plan.status.stable_revision.as_deref(), Some(CANARY));
    assert_eq!(plan.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(plan.weights(), Some(TrafficSplit::ALL_STABLE));
}

#[test]
fn manual_abort_rolls_back_in_one_write() {
    let spec = spec(standard_steps());
    let plan = at_step(&spec, 1, 5, |world| with_request(world, RequestedAction::Abort));
    assert_eq!(plan.actions, [set_weights(0)]);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));
    assert_eq!(condition(&plan, "Aborted").reason, "Manual");
    assert_eq!(reasons(&plan), ["Aborted", "ManualRequest"]);
}

#[test]
fn requests_are_handled_once() {
    let spec = spec(standard_steps());
    let first = at_step(&spec, 0, 5, |world| with_request(world, RequestedAction::Promote));
    assert_eq!(first.status.current_step_index, Some(1));
    // The annotation is still there on the next reconcile: nothing happens.
    let mut observed = with_request(world(&spec, 50), RequestedAction::Promote);
    observed.revisions[1] = ready(CANARY, 5);
    let second = run(&spec, &first.status, &observed, 10);
    assert_eq!(second.status.current_step_index, Some(1));
    assert_eq!(second.status.requests.len(), 1);
    assert!(!reasons(&second).contains(&"ManualRequest"));
}

#[test]
fn manual_pause_holds_traffic_until_resume() {
    let spec = spec(standard_steps());
    let observed = with_request(world(&spec, 10), RequestedAction::Pause);
    let paused = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 10);
    assert!(paused.is_idle());
    assert_eq!(condition(&paused, "Paused").reason, "Manual");
    // Long past the hold it still waits.
    let still = run(&spec, &paused.status, &observed, 1_000);
    assert_eq!(still.status.current_step_index, Some(0));
    let resumed = run(
        &spec,
        &still.status,
        &Observed {
            request: request(RequestedAction::Resume, 2),
            ..world(&spec, 10)
        },
        1_000,
    );
    assert_eq!(resumed.status.pause, None);
    // The hold starts again, so it runs its full minimum once more.
    assert_eq!(resumed.status.step_started_at, Some(time(1_000)));
    assert_eq!(resumed.status.current_step_index, Some(0));
}

#[test]
fn retry_restarts_an_aborted_canary_from_the_first_step() {
    let spec = spec(standard_steps());
    let observed = with_request(world(&spec, 50), RequestedAction::Abort);
    let aborted = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 5);
    let observed = Observed {
        request: request(RequestedAction::Retry, 2),
        ..world(&spec, 0)
    };
    let plan = run(&spec, &aborted.status, &observed, 60);
    assert_eq!(plan.status.abort, None);
    assert_eq!(plan.status.current_step_index, Some(0));
    assert_eq!(plan.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(plan.actions, [set_weights(10)]);
    assert!(plan.status.scale_downs.is_empty(), "the canary is live again");
}

#[test]
fn unknown_requests_are_recorded_as_ignored() {
    let spec = spec(standard_steps());
    let observed = Observed {
        request: Some(ManualRequest::parse("rollback@yesterday")),
        ..world(&spec, 10)
    };
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 5);
    assert_eq!(plan.status.last_handled_request.as_deref(), Some("rollback@yesterday"));
    let outcome = plan.status.requests.last().map(|r| r.outcome.clone());
    assert!(outcome.is_some_and(|o| o.starts_with("ignored")));
    assert_eq!(plan.status.current_step_index, Some(0));
}

#[test]
fn requests_without_a_canary_are_ignored() {
    let spec = spec(standard_steps());
    let observed = with_request(steady_world(STABLE), RequestedAction::Abort);
    let plan = run(&spec, &stable_status(), &observed, 0);
    assert!(plan.is_idle());
    assert_eq!(plan.status.abort, None);
    let outcome = plan.status.requests.last().map(|r| r.outcome.as_str());
    assert_eq!(outcome, Some("ignored: no canary in progress"));
}

#[test]
fn request_history_is_bounded() {
    let spec = spec(standard_steps());
    let mut status = stable_status();
    for i in 0..(crate::api::REQUEST_HISTORY as i64 + 5) {
        let observed = Observed {
            request: request(RequestedAction::Pause, i),
            ..steady_world(STABLE)
        };
        status = run(&spec, &status, &observed, i).status;
    }
    assert_eq!(status.requests.len(), crate::api::REQUEST_HISTORY);
}

#[test]
fn pause_during_promotion_is_ignored() {
    let spec = spec(standard_steps());
    let observed = with_request(world(&spec, 50), RequestedAction::Pause);
    let plan = run(&spec, &in_flight(&spec, 3, None), &observed, 0);
    assert_eq!(plan.status.pause, None);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Promoting));
    let outcome = plan.status.requests.last().map(|r| r.outcome.as_str());
    assert_eq!(outcome, Some("ignored: promotion is under way"));
}

#[test]
fn a_request_meant_for_another_revision_is_ignored_with_a_warning() {
    let spec = spec(standard_steps());
    let plan = at_step(&spec, 0, 5, |world| {
        with_request_for(world, RequestedAction::PromoteFull, NEXT)
    });
    assert_eq!(
        plan.status.current_step_index,
        Some(0),
        "the canary in flight stays where it was"
    );
    assert_eq!(plan.status.stable_revision.as_deref(), Some(STABLE));
    let handled = plan
        .status
        .requests
        .last()
        .map(|r| r.outcome.as_str())
        .unwrap_or_default();
    assert!(
        handled.starts_with("ignored: meant for revision 9e77000003"),
        "{handled}"
    );
    let warning = plan.events.iter().find(|e| e.reason == "ManualRequest");
    assert_eq!(warning.map(|e| e.kind), Some(EventKind::Warning));
}

#[test]
fn a_request_for_the_canary_in_flight_is_acted_on() {
    let spec = spec(standard_steps());
    let plan = at_step(&spec, 0, 5, |world| {
        with_request_for(world, RequestedAction::Promote, CANARY)
    });
    assert_eq!(plan.status.current_step_index, Some(1));
}
