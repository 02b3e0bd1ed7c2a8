//! The conditions kstatus reads (Flux's health checks): `Reconciling` while
//! the Rollout is on its way, `Stalled` when a human must act, neither once
//! one revision serves everything.

use super::*;

fn kstatus(plan: &Plan) -> (bool, bool) {
    (is_true(plan, "Reconciling"), is_true(plan, "Stalled"))
}

#[test]
fn a_steady_rollout_is_current() {
    let spec = spec(standard_steps());
    let plan = run(&spec, &stable_status(), &steady_world(STABLE), 0);
    assert_eq!(kstatus(&plan), (false, false));
    assert_eq!(plan.status.observed_generation, Some(1));
    assert_eq!(condition(&plan, "Reconciling").observed_generation, Some(1));
}

#[test]
fn a_canary_in_flight_or_paused_is_in_progress() {
    let spec = spec(standard_steps());
    let holding = run(&spec, &in_flight(&spec, 0, Some(0)), &world(&spec, 10), 5);
    assert_eq!(kstatus(&holding), (true, false));
    assert_eq!(condition(&holding, "Reconciling").reason, "Holding");
    let paused = run(&spec, &in_flight(&spec, 2, Some(0)), &world(&spec, 50), 5);
    assert_eq!(paused.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(kstatus(&paused), (true, false));
}

#[test]
fn an_aborted_rollout_is_stalled() {
    let spec = spec(standard_steps());
    let observed = Observed {
        request: request(RequestedAction::Abort, 1),
        ..world(&spec, 10)
    };
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 5);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));
    assert_eq!(kstatus(&plan), (false, true));
    assert_eq!(condition(&plan, "Stalled").reason, "Aborted");
}

#[test]
fn an_invalid_spec_is_stalled() {
    let mut spec = spec(standard_steps());
    spec.replicas = -1;
    let plan = run(&spec, &stable_status(), &steady_world(STABLE), 0);
    assert_eq!(plan.status.phase, Some(RolloutPhase::InvalidSpec));
    assert_eq!(kstatus(&plan), (false, true));
    assert_eq!(condition(&plan, "Stalled").reason, "InvalidSpec");
}
