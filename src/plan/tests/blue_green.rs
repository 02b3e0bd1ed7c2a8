//! Blue/green: green at full size in preview with no live traffic, one
//! write to switch, one write to roll back inside the window, then blue
//! retires.

use crate::api::BlueGreenStrategy;

use super::*;

/// The canary fixture's router (or none), turned into blue/green.
fn bg_spec(routed: bool, auto_promote: Option<bool>) -> RolloutSpec {
    let mut spec = spec(standard_steps());
    let routing = spec.strategy.canary.take().and_then(|c| c.traffic_routing);
    spec.strategy.blue_green = Some(BlueGreenStrategy {
        traffic_routing: if routed { routing } else { None },
        auto_promote,
        preview_duration: None,
        scale_down_delay: Some(SpecDuration::new("60s")),
    });
    spec
}

/// Both revisions at full size, the canary Service on green, the stable
/// Service on `active`, the route (if any) at `weight`.
fn bg_world(spec: &RolloutSpec, weight: i32, active: &str) -> Observed {
    let mut observed = world(spec, weight);
    observed.revisions = vec![ready(STABLE, REPLICAS), ready(CANARY, REPLICAS)];
    observed.services.stable = Some(active.into());
    observed
}

fn select_stable(revision: &str) -> Action {
    Action::SelectStable {
        revision: revision.into(),
    }
}

#[test]
fn blue_green_is_a_preview_then_a_switch_held_for_the_rollback_window() {
    let steps = steps_of(&bg_spec(true, None));
    assert_eq!(steps.strategy, "blueGreen");
    assert_eq!(
        steps.steps,
        [
            Step::Weight {
                weight: 0,
                min: Duration::ZERO,
                max: Some(Duration::ZERO),
            },
            Step::Switch { window: secs(60) },
        ]
    );
    let manual = steps_of(&bg_spec(true, Some(false)));
    assert_eq!(manual.steps[1], Step::Pause { duration: None });
}

#[test]
fn green_starts_at_full_size_behind_the_preview_while_blue_keeps_all_traffic() {
    let spec = bg_spec(true, None);
    let mut observed = world(&spec, 0);
    observed.revisions.retain(|r| r.revision == STABLE);
    let plan = run(&spec, &stable_status(), &observed, 0);
    assert_eq!(plan.actions, [deploy(CANARY, REPLICAS)]);
    assert_eq!(plan.weights(), None, "no live traffic moves for the preview");
}

#[test]
fn with_a_router_the_switch_is_one_route_write_of_all_traffic() {
    let spec = bg_spec(true, None);
    let plan = run(&spec, &in_flight(&spec, 0, None), &bg_world(&spec, 0, STABLE), 0);
    assert_eq!(plan.actions, [set_weights(100)]);
    assert_eq!(plan.status.current_step_index, Some(1));
    assert!(reasons(&plan).contains(&"StepCompleted"));
}

#[test]
fn without_a_router_the_switch_is_the_stable_services_selector_alone() {
    let spec = bg_spec(false, None);
    let plan = run(&spec, &in_flight(&spec, 0, None), &bg_world(&spec, 0, STABLE), 0);
    assert_eq!(plan.actions, [select_stable(CANARY)]);
    assert_eq!(plan.status.current_step_index, Some(1));
    assert!(reasons(&plan).contains(&"TrafficSwitched"));
}

#[test]
fn the_switched_window_keeps_blue_at_full_size_and_does_not_promote_early() {
    let spec = bg_spec(false, None);
    let observed = bg_world(&spec, 100, CANARY);
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 30);
    assert!(plan.is_idle(), "{:?}", plan.actions);
    assert_eq!(plan.status.stable_revision.as_deref(), Some(STABLE));
    assert_eq!(plan.status.observed_canary_weight, Some(100));
    assert_eq!(condition(&plan, "Progressing").reason, "Switched");
    assert_eq!(plan.requeue_after, Some(secs(30)));
}

#[test]
fn an_abort_inside_the_window_is_one_write_back_to_blue() {
    let spec = bg_spec(false, None);
    let mut observed = bg_world(&spec, 100, CANARY);
    observed.request = request(RequestedAction::Abort, 20);
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 30);
    assert_eq!(plan.actions, [select_stable(STABLE)]);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));

    let routed = bg_spec(true, None);
    let mut observed = bg_world(&routed, 100, STABLE);
    observed.request = request(RequestedAction::Abort, 20);
    let plan = run(&routed, &in_flight(&routed, 1, Some(0)), &observed, 30);
    assert_eq!(plan.actions, [set_weights(0)]);
}

#[test]
fn after_the_window_green_is_promoted_and_blue_retires_soon_after() {
    let spec = bg_spec(false, None);
    let observed = bg_world(&spec, 100, CANARY);
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 60);
    assert_eq!(plan.status.stable_revision.as_deref(), Some(CANARY));
    assert_eq!(plan.status.phase, Some(RolloutPhase::Healthy));
    assert!(plan.actions.contains(&scale(STABLE, 0)), "{:?}", plan.actions);

    let routed = bg_spec(true, None);
    let observed = bg_world(&routed, 100, STABLE);
    let promoted = run(&routed, &in_flight(&routed, 1, Some(0)), &observed, 60);
    assert_eq!(promoted.status.stable_revision.as_deref(), Some(CANARY));
    let due = promoted
        .status
        .scale_downs
        .first()
        .map(|s| (s.revision.as_str(), s.at.clone()));
    assert_eq!(due, Some((STABLE, time(60 + 5))), "blue waited out its window already");
}

#[test]
fn a_newer_revision_during_the_window_puts_blue_back_before_green_goes() {
    let spec = bg_spec(false, None);
    let mut observed = bg_world(&spec, 100, CANARY);
    observed.desired_revision = Some(NEXT.into());
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 30);
    assert_eq!(plan.actions, [select_stable(STABLE)], "green keeps its pods for now");
    assert_eq!(plan.status.canary_revision.as_deref(), Some(NEXT));
}

#[test]
fn the_analysis_measures_green_in_preview_until_an_abort() {
    let spec = with_analysis(bg_spec(false, None), InconclusivePolicy::Pause);
    let mut status = in_flight(&spec, 0, Some(0));
    assert_eq!(measured_canary(&spec, &status).as_deref(), Some(CANARY));
    status.abort = Some(crate::api::AbortStatus {
        reason: AbortReason::Manual,
        message: "aborted by request".into(),
        at: time(5),
    });
    status.phase = Some(RolloutPhase::Aborted);
    assert_eq!(measured_canary(&spec, &status), None);
    assert_eq!(
        measured_canary(&bg_spec(false, None), &in_flight(&spec, 0, Some(0))),
        None,
        "no analysis"
    );
}

#[test]
fn an_analysed_preview_gives_the_first_preview_requests_a_minute() {
    let steps = steps_of(&with_analysis(bg_spec(false, None), InconclusivePolicy::Pause));
    assert_eq!(
        steps.steps[0],
        Step::Weight {
            weight: 0,
            min: FIRST_DATA_GRACE,
            max: None
        }
    );
}
