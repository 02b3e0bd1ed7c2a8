//! First revision, promotion, restarts, aborts, retirement, broken routes.

use super::*;

fn first_world(available: i32) -> Observed {
    Observed {
        desired_revision: Some(STABLE.into()),
        revisions: vec![RevisionState {
            available_replicas: available,
            ..ready(STABLE, REPLICAS)
        }],
        route: route(0, true),
        ..Observed::default()
    }
}

#[test]
fn first_revision_waits_for_its_pods() {
    let spec = spec(standard_steps());
    let plan = run(&spec, &RolloutStatus::default(), &first_world(3), 0);
    assert!(plan.is_idle());
    assert_eq!(plan.status.phase, Some(RolloutPhase::Pending));
    assert_eq!(plan.status.stable_revision, None);
}

#[test]
fn first_revision_becomes_stable_without_a_canary() {
    let spec = spec(standard_steps());
    let empty = Observed {
        revisions: vec![],
        ..first_world(0)
    };
    let start = run(&spec, &RolloutStatus::default(), &empty, 0);
    assert_eq!(start.actions, [deploy(STABLE, REPLICAS)]);
    let plan = run(&spec, &start.status, &first_world(REPLICAS), 10);
    assert_eq!(plan.status.stable_revision.as_deref(), Some(STABLE));
    assert_eq!(plan.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(plan.actions, [select(STABLE, STABLE)]);
}

#[test]
fn steady_state_is_idle_and_healthy() {
    let spec = spec(standard_steps());
    let plan = run(&spec, &stable_status(), &steady_world(STABLE), 0);
    assert!(plan.is_idle());
    assert!(is_true(&plan, "Healthy"));
    assert!(!is_true(&plan, "Progressing"));
    let again = run(&spec, &plan.status, &steady_world(STABLE), 100);
    assert_eq!(again.status, plan.status);
    assert!(again.events.is_empty());
}

#[test]
fn workload_ref_is_scaled_down_once_siskin_serves() {
    let spec = spec(standard_steps());
    let observed = Observed {
        workload_ref_replicas: Some(3),
        ..steady_world(STABLE)
    };
    let plan = run(&spec, &stable_status(), &observed, 0);
    assert_eq!(plan.actions, [Action::ScaleDownWorkloadRef]);
}

#[test]
fn last_step_promotes_by_scaling_canary_to_full_size_first() {
    let spec = spec(standard_steps());
    let plan = run(&spec, &in_flight(&spec, 3, None), &world(&spec, 50), 0);
    assert_eq!(plan.actions, [deploy(CANARY, REPLICAS)]);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Promoting));
    assert_eq!(plan.status.stable_revision.as_deref(), Some(STABLE));
}

#[test]
fn promotion_moves_the_stable_service_not_the_pods() {
    let spec = spec(standard_steps());
    let mut observed = world(&spec, 50);
    observed.revisions[1] = ready(CANARY, REPLICAS);
    let plan = run(&spec, &in_flight(&spec, 3, None), &observed, 0);
    assert_eq!(plan.actions, [select(CANARY, CANARY), set_weights(0)]);
    assert_eq!(plan.status.stable_revision.as_deref(), Some(CANARY));
    assert_eq!(plan.status.canary_revision, None);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Healthy));
    assert!(reasons(&plan).contains(&"Promoted"));
    // The old stable keeps its pods for the scale-down delay.
    let retire = plan
        .status
        .scale_downs
        .first()
        .map(|s| (s.revision.as_str(), s.at.clone()));
    assert_eq!(retire, Some((STABLE, time(30))));
}

#[test]
fn promotion_interrupted_before_its_status_write_is_finished_not_undone() {
    let spec = spec(standard_steps());
    // The last plan moved the stable Service to the canary and the weights
    // to 100/0, then the controller stopped before writing its status.
    let mut observed = world(&spec, 0);
    observed.revisions[0] = ready(STABLE, REPLICAS);
    observed.revisions[1] = ready(CANARY, REPLICAS);
    observed.services.stable = Some(CANARY.into());
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 10);
    assert_eq!(plan.actions, [select(CANARY, CANARY)]);
    assert_eq!(plan.status.stable_revision.as_deref(), Some(CANARY));
    assert_eq!(plan.status.phase, Some(RolloutPhase::Healthy));
    assert!(reasons(&plan).contains(&"Promoted"));
}

#[test]
fn old_revision_scales_down_after_scale_down_delay() {
    let spec = spec(standard_steps());
    let mut status = stable_status();
    status.stable_revision = Some(CANARY.into());
    let mut observed = steady_world(CANARY);
    observed.revisions.push(ready(STABLE, REPLICAS));
    let scheduled = run(&spec, &status, &observed, 0);
    assert!(scheduled.is_idle());
    assert_eq!(scheduled.requeue_after, Some(secs(30)));
    let early = run(&spec, &scheduled.status, &observed, 29);
    assert!(early.is_idle());
    let due = run(&spec, &scheduled.status, &observed, 30);
    assert_eq!(due.actions, [scale(STABLE, 0)]);
    assert!(due.status.scale_downs.is_empty());
}

#[test]
fn old_revision_stays_up_while_the_new_stable_is_unavailable() {
    let spec = spec(standard_steps());
    let mut status = stable_status();
    status.stable_revision = Some(CANARY.into());
    status.scale_downs = vec![crate::api::ScheduledScaleDown {
        revision: STABLE.into(),
        at: time(0),
    }];
    let mut observed = steady_world(CANARY);
    observed.revisions[0].available_replicas = 4;
    observed.revisions.push(ready(STABLE, REPLICAS));
    let plan = run(&spec, &status, &observed, 100);
    assert!(!plan.actions.contains(&scale(STABLE, 0)));
    assert_eq!(
        plan.status.scale_downs.len(),
        1,
        "the scale-down stays scheduled for when the new stable is available"
    );
    // Once the new stable is available again, the old revision goes.
    let mut recovered = steady_world(CANARY);
    recovered.revisions.push(ready(STABLE, REPLICAS));
    let later = run(&spec, &plan.status, &recovered, 101);
    assert_eq!(later.actions, [scale(STABLE, 0)]);
}

#[test]
fn new_revision_mid_rollout_restarts_from_stable() {
    let spec = spec(standard_steps());
    let mut observed = world(&spec, 50);
    observed.desired_revision = Some(NEXT.into());
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 10);
    assert_eq!(plan.actions, [set_weights(0)]);
    assert_eq!(plan.status.canary_revision.as_deref(), Some(NEXT));
    assert_eq!(plan.status.current_step_index, Some(0));
    assert_eq!(plan.status.step_started_at, None);
    assert_eq!(reasons(&plan), ["RevisionSuperseded"]);
    // Once the route is back on stable, the new canary starts and the old
    // one is scheduled to retire.
    observed.route = route(0, true);
    let next = run(&spec, &plan.status, &observed, 20);
    assert_eq!(next.actions, [deploy(NEXT, 1)]);
    let retiring: Vec<&str> = next.status.scale_downs.iter().map(|s| s.revision.as_str()).collect();
    assert_eq!(retiring, [CANARY]);
}

#[test]
fn canary_service_is_not_repointed_while_it_carries_traffic() {
    let spec = spec(standard_steps());
    let mut observed = world(&spec, 50);
    observed.desired_revision = Some(NEXT.into());
    observed.revisions.push(ready(NEXT, 1));
    let mut status = in_flight(&spec, 0, None);
    status.canary_revision = Some(NEXT.into());
    let plan = run(&spec, &status, &observed, 0);
    assert_eq!(plan.actions, [set_weights(0)]);
}

#[test]
fn spec_reverted_to_stable_drops_the_aborted_canary() {
    let spec = spec(standard_steps());
    let mut status = in_flight(&spec, 1, None);
    status.abort = Some(crate::api::AbortStatus {
        reason: AbortReason::Manual,
        message: "by request".into(),
        at: time(0),
    });
    let mut observed = steady_world(STABLE);
    observed.revisions.push(ready(CANARY, 5));
    let plan = run(&spec, &status, &observed, 10);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(plan.status.canary_revision, None);
    assert_eq!(plan.status.abort, None);
    assert!(reasons(&plan).contains(&"CanaryDropped"));
}

#[test]
fn aborted_canary_is_scaled_down_after_the_delay() {
    let spec = with_analysis(spec(standard_steps()), InconclusivePolicy::Pause);
    let observed = verdict(world(&spec, 50), Verdict::Regression);
    let aborted = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 0);
    assert_eq!(aborted.status.scale_downs.len(), 1);
    let mut observed = world(&spec, 0);
    observed.revisions[1] = ready(CANARY, 5);
    let held = run(&spec, &aborted.status, &observed, 10);
    assert!(held.is_idle());
    assert_eq!(held.status.phase, Some(RolloutPhase::Aborted));
    let due = run(&spec, &aborted.status, &observed, 30);
    assert_eq!(due.actions, [scale(CANARY, 0)]);
}

#[test]
fn aborted_rollout_puts_drifted_weights_back() {
    let spec = with_analysis(spec(standard_steps()), InconclusivePolicy::Pause);
    let aborted = run(
        &spec,
        &in_flight(&spec, 1, Some(0)),
        &verdict(world(&spec, 50), Verdict::Regression),
        0,
    );
    // Someone (or a GitOps sync) put 50% back on the canary.
    let plan = run(&spec, &aborted.status, &world(&spec, 50), 5);
    assert_eq!(plan.weights(), Some(TrafficSplit::ALL_STABLE));
}

#[test]
fn missing_route_moves_no_traffic_and_says_why() {
    let spec = spec(standard_steps());
    let mut observed = world(&spec, 0);
    observed.revisions[1] = ready(CANARY, 1);
    observed.route = Some(RouteState::NotFound);
    let plan = run(&spec, &in_flight(&spec, 0, None), &observed, 0);
    assert!(plan.is_idle());
    let progressing = condition(&plan, "Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "RouteNotFound")
    );
    assert_eq!(plan.status.step_started_at, None);
    assert_eq!(plan.requeue_after, Some(ROUTE_MISSING_POLL));
}

#[test]
fn route_without_both_backends_moves_no_traffic() {
    let spec = spec(standard_steps());
    let mut observed = world(&spec, 0);
    observed.revisions[1] = ready(CANARY, 1);
    observed.route = Some(RouteState::MissingBackends {
        message: "no rule sends traffic to shop-canary".into(),
    });
    let plan = run(&spec, &in_flight(&spec, 0, None), &observed, 0);
    assert!(plan.is_idle());
    assert_eq!(condition(&plan, "Progressing").reason, "RouteMissingBackends");
}

#[test]
fn invalid_spec_freezes_the_rollout() {
    let spec = spec(vec![
        CanaryStep::weight(50, None),
        CanaryStep::weight(10, hold("later", None)),
    ]);
    let plan = run(&spec, &in_flight(&spec_ok(), 1, Some(0)), &world(&spec_ok(), 50), 0);
    assert!(plan.is_idle());
    assert_eq!(plan.status.phase, Some(RolloutPhase::InvalidSpec));
    assert!(is_true(&plan, "InvalidSpec"));
    let message = &condition(&plan, "InvalidSpec").message;
    assert!(message.contains("below the previous weight"), "{message}");
    assert!(message.contains("steps[1].hold.min"), "{message}");
    assert_eq!(reasons(&plan), ["InvalidSpec"]);
}

fn spec_ok() -> RolloutSpec {
    spec(standard_steps())
}

#[test]
fn missing_pod_template_waits_without_touching_anything() {
    let spec = spec(standard_steps());
    let observed = Observed {
        desired_revision: None,
        ..world(&spec, 10)
    };
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 100);
    assert!(plan.is_idle());
    assert_eq!(condition(&plan, "Progressing").reason, "PodTemplateUnavailable");
}

#[test]
fn without_a_router_the_canary_share_is_its_replica_share() {
    let spec = unrouted(spec(standard_steps()));
    let mut observed = world(&spec, 0);
    observed.revisions = vec![ready(STABLE, REPLICAS), ready(CANARY, 1)];
    let plan = run(&spec, &in_flight(&spec, 0, None), &observed, 0);
    // 10% of 10 replicas: one canary pod, nine stable.
    assert_eq!(plan.actions, [scale(STABLE, 9)]);
    let settled = run(&spec, &in_flight(&spec, 0, None), &world(&spec, 10), 0);
    assert!(settled.is_idle());
    assert_eq!(settled.status.step_started_at, Some(time(0)));
}

#[test]
fn without_a_router_abort_removes_canary_pods_at_once() {
    let spec = with_analysis(unrouted(spec(standard_steps())), InconclusivePolicy::Pause);
    let observed = verdict(world(&spec, 50), Verdict::Regression);
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 0);
    assert_eq!(plan.actions, [scale(CANARY, 0), scale(STABLE, REPLICAS)]);
}

/// The plan for a healthy rollout whose route is in the state `route_is`.
fn steady_with_route(route_is: Option<RouteState>) -> Plan {
    let spec = spec(standard_steps());
    let observed = Observed {
        route: route_is,
        ..steady_world(STABLE)
    };
    run(&spec, &stable_status(), &observed, 0)
}

#[test]
fn steady_state_returns_drifted_weights_to_stable() {
    let plan = steady_with_route(route(20, true));
    assert_eq!(plan.actions, [set_weights(0)]);
    assert!(!is_true(&plan, "Healthy"));
}

#[test]
fn healthy_waits_for_the_data_plane() {
    let plan = steady_with_route(route(0, false));
    assert!(plan.is_idle());
    assert_eq!(condition(&plan, "Healthy").reason, "AwaitingDataPlane");
}

#[test]
fn without_a_router_the_observed_weight_is_the_share_of_available_pods() {
    let spec = unrouted(spec(standard_steps()));
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &world(&spec, 50), 10);
    assert_eq!(plan.status.observed_canary_weight, Some(50));
}

#[test]
fn without_a_router_promotion_removes_the_old_pods_at_once() {
    let spec = unrouted(spec(standard_steps()));
    let mut observed = world(&spec, 50);
    observed.revisions[1] = ready(CANARY, REPLICAS);
    let plan = run(&spec, &in_flight(&spec, 3, None), &observed, 0);
    assert_eq!(plan.actions, [select(CANARY, CANARY), scale(STABLE, 0)]);
    assert_eq!(plan.status.stable_revision.as_deref(), Some(CANARY));
    assert!(plan.status.scale_downs.is_empty());
}

#[test]
fn objects_nobody_handed_to_siskin_freeze_the_rollout_and_say_which() {
    let spec = spec(standard_steps());
    let sentence = "Service shop/shop-stable exists and was not created by Siskin; Siskin manages its selector only once it is annotated siskin.io/adopt=shop".to_string();
    let observed = Observed {
        not_adopted: vec![sentence.clone()],
        ..world(&spec, 10)
    };
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 5);
    assert!(plan.actions.is_empty(), "nothing is written: {:?}", plan.actions);
    assert_eq!(plan.status.phase, Some(RolloutPhase::InvalidSpec));
    let invalid = condition(&plan, "InvalidSpec");
    assert_eq!(
        (invalid.status.as_str(), invalid.reason.as_str()),
        ("True", "AdoptionRequired")
    );
    assert_eq!(invalid.message, sentence);
    assert!(reasons(&plan).contains(&"AdoptionRequired"), "{:?}", plan.events);
}
