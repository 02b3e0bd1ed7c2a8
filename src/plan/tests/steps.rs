//! Weight steps and holds, without analysis.

use super::*;

#[test]
fn new_revision_starts_the_first_step() {
    let spec = spec(standard_steps());
    let mut observed = steady_world(STABLE);
    observed.desired_revision = Some(CANARY.into());
    let plan = run(&spec, &stable_status(), &observed, 0);
    assert_eq!(plan.actions, [deploy(CANARY, 1)]);
    assert_eq!(plan.status.canary_revision.as_deref(), Some(CANARY));
    assert_eq!(plan.status.current_step_index, Some(0));
    assert_eq!(plan.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(reasons(&plan), ["NewRevision"]);
}

#[test]
fn canary_pods_are_ready_before_any_traffic_moves() {
    let spec = spec(standard_steps());
    let mut observed = world(&spec, 0);
    observed.revisions[1].available_replicas = 0;
    let plan = run(&spec, &in_flight(&spec, 0, None), &observed, 0);
    assert!(plan.weights().is_none());
    assert_eq!(condition(&plan, "Progressing").reason, "WaitingForCanary");
}

#[test]
fn services_select_revisions_before_weights() {
    let spec = spec(standard_steps());
    let mut observed = world(&spec, 0);
    observed.revisions[1] = ready(CANARY, 1);
    observed.services = ServiceSelectors::default();
    let plan = run(&spec, &in_flight(&spec, 0, None), &observed, 0);
    assert_eq!(plan.actions, [select(STABLE, CANARY)]);
}

#[test]
fn first_step_writes_its_weight_once_pods_and_services_are_ready() {
    let spec = spec(standard_steps());
    let mut observed = world(&spec, 0);
    observed.revisions[1] = ready(CANARY, 1);
    let mut status = in_flight(&spec, 0, None);
    status.canary_weight = Some(0);
    let plan = run(&spec, &status, &observed, 0);
    assert_eq!(plan.actions, [set_weights(10)]);
    assert_eq!(plan.status.canary_weight, Some(10));
    assert_eq!(
        plan.status.step_started_at,
        Some(time(0)),
        "the hold counts from the write"
    );
    assert_eq!(reasons(&plan), ["TrafficShifted"]);
}

#[test]
fn hold_starts_only_when_the_route_is_accepted() {
    let spec = spec(standard_steps());
    let mut observed = world(&spec, 10);
    observed.route = route(10, false);
    let plan = run(&spec, &in_flight(&spec, 0, None), &observed, 0);
    assert!(plan.is_idle());
    assert_eq!(plan.status.step_started_at, None);
    assert_eq!(condition(&plan, "Progressing").reason, "ShiftingTraffic");
}

#[test]
fn hold_starts_when_the_data_plane_accepts() {
    let spec = spec(standard_steps());
    let plan = run(&spec, &in_flight(&spec, 0, None), &world(&spec, 10), 5);
    assert!(plan.is_idle());
    assert_eq!(plan.status.step_started_at, Some(time(5)));
    assert_eq!(plan.requeue_after, Some(secs(60)));
}

#[test]
fn a_step_costs_one_status_write_and_cannot_pass_before_the_data_plane_accepts() {
    // The status that enters the step starts its hold with the route write;
    // the looks that follow, route written but not yet accepted and then
    // accepted, change nothing the engine decides from.
    let spec = spec(vec![
        CanaryStep::weight(10, hold("60s", None)),
        CanaryStep::weight(50, hold("5s", None)),
        CanaryStep::pause(None),
    ]);
    let mut before_write = world(&spec, 50);
    before_write.route = route(10, true);
    let writing = run(&spec, &in_flight(&spec, 1, None), &before_write, 0);
    assert_eq!(writing.actions, [set_weights(50)]);
    assert_eq!(writing.status.step_started_at, Some(time(0)));
    let mut written = world(&spec, 50);
    written.route = route(50, false);
    let unaccepted = run(&spec, &writing.status, &written, 30);
    assert!(unaccepted.is_idle());
    assert_eq!(
        unaccepted.status.current_step_index,
        Some(1),
        "no pass before acceptance"
    );
    assert_eq!(unaccepted.status.step_started_at, writing.status.step_started_at);
    let accepted = run(&spec, &unaccepted.status, &world(&spec, 50), 31);
    assert_eq!(
        accepted.status.current_step_index,
        Some(2),
        "held long enough, accepted: passes"
    );
    assert_eq!(accepted.status.observed_canary_weight, Some(50));
}

#[test]
fn a_hold_starting_mid_second_is_recorded_from_the_next_whole_second() {
    // Status times have whole seconds: rounding the start down would cut
    // the hold short by up to a second.
    let spec = spec(standard_steps());
    let now = at(5) + jiff::SignedDuration::from_millis(300);
    let plan = plan(&spec, Some(&in_flight(&spec, 0, None)), &world(&spec, 10), now);
    assert_eq!(plan.status.step_started_at, Some(time(6)));
    assert_eq!(plan.requeue_after, Some(secs(60)));
}

#[test]
fn waits_for_the_min_hold() {
    let spec = spec(standard_steps());
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &world(&spec, 10), 45);
    assert!(plan.is_idle());
    assert_eq!(plan.status.current_step_index, Some(0));
    assert_eq!(plan.requeue_after, Some(secs(15)));
    assert_eq!(condition(&plan, "Progressing").reason, "Holding");
}

#[test]
fn advances_after_min_hold() {
    let spec = spec(standard_steps());
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &world(&spec, 10), 60);
    assert_eq!(plan.status.current_step_index, Some(1));
    assert_eq!(plan.status.step_started_at, None);
    assert_eq!(plan.events[0].reason, "StepCompleted");
    // 50% of 10 replicas needs 5 canary pods before any traffic moves.
    assert_eq!(plan.actions, [deploy(CANARY, 5)]);
}

#[test]
fn advancing_and_shifting_traffic_share_one_reconcile_when_pods_suffice() {
    let spec = spec(vec![
        CanaryStep::weight(5, hold("60s", None)),
        CanaryStep::weight(10, hold("60s", None)),
    ]);
    // 5% and 10% of 10 replicas are both one pod.
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &world(&spec, 5), 60);
    assert_eq!(plan.actions, [set_weights(10)]);
    assert_eq!(plan.status.current_step_index, Some(1));
    assert_eq!(plan.status.canary_weight, Some(10));
}

#[test]
fn step_without_hold_advances_as_soon_as_its_weight_is_accepted() {
    let spec = spec(vec![CanaryStep::weight(10, None), CanaryStep::pause(None)]);
    let plan = run(&spec, &in_flight(&spec, 0, None), &world(&spec, 10), 0);
    assert_eq!(plan.status.current_step_index, Some(1));
    assert_eq!(plan.status.phase, Some(RolloutPhase::Paused));
}

#[test]
fn resumes_mid_step_after_restart() {
    // A new controller process has nothing but the status and the world.
    let spec = spec(standard_steps());
    let status = in_flight(&spec, 1, Some(100));
    let observed = world(&spec, 50);
    let early = run(&spec, &status, &observed, 160);
    assert!(early.is_idle());
    assert_eq!(early.status.step_started_at, Some(time(100)));
    assert_eq!(early.requeue_after, Some(secs(60)));
    let due = run(&spec, &status, &observed, 220);
    assert_eq!(due.status.current_step_index, Some(2));
}

#[test]
fn an_unchanged_world_changes_nothing() {
    let spec = spec(standard_steps());
    let first = run(&spec, &in_flight(&spec, 0, Some(0)), &world(&spec, 10), 30);
    let second = run(&spec, &first.status, &world(&spec, 10), 40);
    assert_eq!(first.status, second.status);
    assert!(second.events.is_empty());
}

#[test]
fn edited_steps_restart_from_the_first_step() {
    let spec = spec(standard_steps());
    let mut status = in_flight(&spec, 1, Some(0));
    status.steps_hash = Some("an-older-list".into());
    let plan = run(&spec, &status, &world(&spec, 50), 10);
    assert_eq!(plan.status.current_step_index, Some(0));
    assert!(reasons(&plan).contains(&"StepsChanged"));
    // The route has more than the first step's weight: it goes back to 10%.
    assert_eq!(plan.weights(), Some(TrafficSplit::canary_percent(10)));
}

#[test]
fn timed_pause_advances_after_its_duration() {
    let spec = spec(vec![
        CanaryStep::weight(20, None),
        CanaryStep::pause(Some("5m".into())),
        CanaryStep::weight(60, None),
    ]);
    let waiting = run(&spec, &in_flight(&spec, 1, Some(0)), &world(&spec, 20), 299);
    assert!(waiting.is_idle());
    assert_eq!(waiting.requeue_after, Some(secs(1)));
    let done = run(&spec, &in_flight(&spec, 1, Some(0)), &world(&spec, 20), 300);
    assert_eq!(done.status.current_step_index, Some(2));
}

#[test]
fn pause_step_waits_for_promote() {
    let spec = spec(standard_steps());
    let plan = run(&spec, &in_flight(&spec, 2, None), &world(&spec, 50), 0);
    assert!(plan.is_idle());
    assert_eq!(plan.status.phase, Some(RolloutPhase::Paused));
    assert!(is_true(&plan, "Paused"));
    assert_eq!(condition(&plan, "Paused").reason, "PauseStep");
    // A day later it still waits, without polling.
    let later = run(&spec, &plan.status, &world(&spec, 50), 86_400);
    assert!(later.is_idle());
    assert_eq!(later.status.current_step_index, Some(2));
    assert_eq!(later.requeue_after, None);
    assert_eq!(later.status, plan.status);
}

#[test]
fn a_canary_is_measured_only_at_steps_that_send_it_requests() {
    let steps = steps_of(&spec(vec![
        CanaryStep::pause(None),
        CanaryStep::weight(10, None),
        CanaryStep::pause(None),
    ]));
    let served: Vec<bool> = (0..4).map(|i| steps.canary_serves_at(i)).collect();
    assert_eq!(served, [false, true, true, false], "past the end is the promotion");
}

#[test]
fn replicas_beyond_the_bound_are_refused_before_any_batch_is_expanded() {
    let mut spec = spec(standard_steps());
    spec.replicas = 50_000_000;
    spec.strategy = crate::api::RolloutStrategy {
        rolling: Some(serde_json::from_value(serde_json::json!({"maxSurge": 1})).expect("rolling")),
        ..crate::api::RolloutStrategy::default()
    };
    let errors = expand(&spec).expect_err("refused");
    assert!(errors.contains(&SpecError::TooManyReplicas), "{errors:?}");
    let plan = plan(&spec, Some(&stable_status()), &steady_world(STABLE), at(0));
    assert_eq!(plan.status.phase, Some(RolloutPhase::InvalidSpec));
    assert!(plan.actions.is_empty());
}

#[test]
fn a_webhook_may_wait_at_most_thirty_seconds() {
    let mut spec = spec(standard_steps());
    spec.webhooks = serde_json::from_value(serde_json::json!([
        {"name": "slow", "type": "rollout", "url": "http://hooks.shop/", "timeout": "10m"},
        {"name": "fine", "type": "rollout", "url": "http://hooks.shop/", "timeout": "30s"},
    ]))
    .expect("webhooks");
    let errors = expand(&spec).expect_err("refused");
    assert_eq!(errors, [SpecError::WebhookTimeout { index: 0 }]);
}

#[test]
fn a_service_name_that_cannot_take_the_stable_and_canary_suffixes_is_refused() {
    for name in ["Shop", "shop_v2", "", &"s".repeat(57)] {
        let mut spec = spec(standard_steps());
        spec.service.name = name.to_string();
        let errors = expand(&spec).expect_err("refused");
        assert!(
            matches!(errors.as_slice(), [SpecError::ServiceName { .. }]),
            "{name}: {errors:?}"
        );
    }
    let mut spec = spec(standard_steps());
    spec.service.name = "s".repeat(56);
    assert!(
        expand(&spec).is_ok(),
        "56 characters leave room for -stable and -canary"
    );
}
