//! An autoscaler writing `spec.replicas` (through the scale subresource)
//! mid-canary: both revisions follow the new size, the step, its weight and
//! its hold stay where they are.

use super::*;

fn scaled(mut spec: RolloutSpec, replicas: i32) -> RolloutSpec {
    spec.replicas = replicas;
    spec
}

/// The plan 30 s after an autoscaler set `replicas` on `before`, in the
/// world `status` left at the old size, and the rescaled spec.
fn autoscaled(before: &RolloutSpec, status: &RolloutStatus, replicas: i32) -> (RolloutSpec, Plan) {
    let after = scaled(before.clone(), replicas);
    let weight = status.canary_weight.unwrap_or_default();
    let plan = run(&after, status, &world(before, weight), 30);
    (after, plan)
}

/// `status`, paused for `reason` since 0.
fn paused(status: RolloutStatus, reason: crate::api::PauseReason) -> RolloutStatus {
    RolloutStatus {
        phase: Some(RolloutPhase::Paused),
        pause: Some(crate::api::PauseStatus { reason, since: time(0) }),
        ..status
    }
}

#[test]
fn scaling_up_mid_canary_keeps_the_step_and_resizes_both_revisions() {
    let before = spec(standard_steps());
    let status = in_flight(&before, 1, Some(0));
    let (after, plan) = autoscaled(&before, &status, 20);
    assert_eq!(plan.actions, [deploy(CANARY, 10), scale(STABLE, 20)]);
    assert_eq!(plan.status.current_step_index, Some(1), "same step");
    assert_eq!(plan.status.canary_weight, Some(50), "same weight");
    assert_eq!(plan.status.step_started_at, Some(time(0)), "the hold goes on");
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::SetWeights(_))));
    assert!(reasons(&plan).is_empty(), "no step completed or restarted");

    let resized = world(&after, 50);
    assert_eq!(resized.revision(CANARY).map(|r| r.replicas), Some(10));
    let settled = run(&after, &plan.status, &resized, 60);
    assert!(settled.actions.is_empty(), "{:?}", settled.actions);
    assert_eq!(settled.status.canary_weight, Some(50));
    assert_eq!(settled.status.replicas, Some(30), "20 stable and 10 canary pods");
}

#[test]
fn scaling_down_mid_canary_shrinks_both_revisions_at_the_same_weight() {
    let before = spec(standard_steps());
    let status = in_flight(&before, 1, Some(0));
    let (_, plan) = autoscaled(&before, &status, 4);
    assert_eq!(plan.actions, [deploy(CANARY, 2), scale(STABLE, 4)]);
    assert_eq!(plan.status.current_step_index, Some(1));
    assert_eq!(plan.status.canary_weight, Some(50));
}

#[test]
fn a_paused_step_follows_the_scale_too() {
    let before = spec(standard_steps());
    let status = paused(in_flight(&before, 2, Some(0)), crate::api::PauseReason::PauseStep);
    let (after, plan) = autoscaled(&before, &status, 20);
    assert_eq!(plan.actions, [deploy(CANARY, 10), scale(STABLE, 20)]);
    assert_eq!(plan.status.current_step_index, Some(2));
    assert!(plan.status.pause.is_some(), "still waiting for promote");
    let settled = run(&after, &plan.status, &world(&after, 50), 60);
    assert!(settled.actions.is_empty(), "{:?}", settled.actions);
    assert_eq!(settled.status.phase, Some(RolloutPhase::Paused));
    assert!(reasons(&settled).is_empty(), "no second Paused event");
}

#[test]
fn without_a_router_the_pod_ratio_keeps_the_weight() {
    let before = unrouted(spec(standard_steps()));
    let status = in_flight(&before, 0, Some(0));
    let (_, plan) = autoscaled(&before, &status, 20);
    assert_eq!(plan.actions, [deploy(CANARY, 2), scale(STABLE, 18)]);
    assert_eq!(plan.status.canary_weight, Some(10));
    assert_eq!(plan.status.current_step_index, Some(0));
}

#[test]
fn the_scale_subresource_reads_every_revisions_pods_and_selector() {
    let spec = spec(standard_steps());
    let observed = Observed {
        pod_selector: Some("siskin.io/rollout=shop".into()),
        ..world(&spec, 10)
    };
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 1);
    assert_eq!(plan.status.replicas, Some(11), "10 stable and 1 canary pod");
    assert_eq!(plan.status.selector.as_deref(), Some("siskin.io/rollout=shop"));
}

#[test]
fn a_manual_pause_follows_the_scale_without_moving_traffic() {
    let before = spec(standard_steps());
    let status = paused(in_flight(&before, 1, Some(0)), crate::api::PauseReason::Manual);
    let (after, plan) = autoscaled(&before, &status, 20);
    assert_eq!(plan.actions, [deploy(CANARY, 10), scale(STABLE, 20)]);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(plan.status.pause, status.pause, "still paused by request");
    let settled = run(&after, &plan.status, &world(&after, 50), 60);
    assert!(settled.actions.is_empty(), "{:?}", settled.actions);
}
