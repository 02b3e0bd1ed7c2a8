//! Rolling updates: batches of new pods within maxSurge and
//! maxUnavailable, each gated like a step, and an abort that walks back.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::RollingStrategy;

use super::*;

fn rolling_spec(replicas: i32, surge: i32) -> RolloutSpec {
    let mut spec = spec(standard_steps());
    spec.replicas = replicas;
    spec.strategy.canary = None;
    spec.strategy.rolling = Some(RollingStrategy {
        max_surge: Some(IntOrString::Int(surge)),
        max_unavailable: Some(IntOrString::Int(0)),
        batch_hold: hold("10s", None),
    });
    spec
}

/// `canary` new pods and the rest old, all available.
fn rolling_world(replicas: i32, canary: i32) -> Observed {
    Observed {
        generation: Some(1),
        desired_revision: Some(CANARY.into()),
        revisions: vec![ready(STABLE, replicas - canary), ready(CANARY, canary)],
        services: ServiceSelectors {
            stable: Some(STABLE.into()),
            canary: Some(CANARY.into()),
        },
        ..Observed::default()
    }
}

#[test]
fn five_replicas_with_surge_one_are_four_batches_then_the_promotion() {
    let steps = steps_of(&rolling_spec(5, 1));
    assert_eq!(steps.strategy, "rolling");
    assert_eq!(
        steps.shape,
        Shape::Rolling {
            surge: 1,
            unavailable: 0
        }
    );
    let batches: Vec<i32> = (0..steps.steps.len()).map(|i| steps.batch_at(i)).collect();
    assert_eq!(batches, [1, 2, 3, 4]);
    assert_eq!(steps.batch_at(4), 5);
    assert!(!steps.routed);
}

#[test]
fn percentages_round_like_a_deployment() {
    let mut spec = rolling_spec(10, 1);
    if let Some(r) = spec.strategy.rolling.as_mut() {
        r.max_surge = Some(IntOrString::String("25%".into()));
        r.max_unavailable = Some(IntOrString::String("25%".into()));
    }
    assert_eq!(
        steps_of(&spec).shape,
        Shape::Rolling {
            surge: 3,
            unavailable: 2
        }
    );
}

#[test]
fn zero_surge_and_zero_unavailable_is_refused() {
    let spec = rolling_spec(5, 0);
    let errors = expand(&spec).err().unwrap_or_default();
    assert_eq!(errors, [SpecError::RollingStuck]);
}

#[test]
fn a_batch_adds_new_pods_before_old_ones_go() {
    let spec = rolling_spec(5, 1);
    let mut observed = rolling_world(5, 0);
    observed.revisions.retain(|r| r.revision == STABLE);
    let plan = run(&spec, &stable_status(), &observed, 0);
    assert_eq!(plan.actions, [deploy(CANARY, 1)]);

    let mut grown = rolling_world(5, 1);
    grown.revisions[0].replicas = 5;
    grown.revisions[0].available_replicas = 5;
    let plan = run(&spec, &plan.status, &grown, 5);
    assert_eq!(plan.actions, [scale(STABLE, 4)]);
}

#[test]
fn a_batch_is_held_once_its_pods_are_available() {
    let spec = rolling_spec(5, 1);
    let plan = run(&spec, &in_flight(&spec, 0, None), &rolling_world(5, 1), 0);
    assert!(plan.is_idle());
    assert_eq!(condition(&plan, "Progressing").reason, "Holding");
    let next = run(&spec, &plan.status, &rolling_world(5, 1), 10);
    assert_eq!(next.status.current_step_index, Some(1));
    assert_eq!(next.actions, [deploy(CANARY, 2)]);
}

#[test]
fn a_regression_half_way_walks_back_to_the_old_revision_within_bounds() {
    let spec = with_analysis(rolling_spec(5, 1), InconclusivePolicy::Pause);
    let observed = verdict(rolling_world(5, 2), Verdict::Regression);
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 20);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));
    assert_eq!(plan.actions, [scale(STABLE, 4)], "old pods come back first");
    let mut back = rolling_world(5, 2);
    back.revisions[0] = ready(STABLE, 4);
    let plan = run(&spec, &plan.status, &back, 25);
    assert_eq!(plan.actions, [deploy(CANARY, 1)]);
}

#[test]
fn the_promotion_is_the_last_batch_then_the_services_move() {
    let spec = rolling_spec(5, 1);
    let plan = run(&spec, &in_flight(&spec, 4, None), &rolling_world(5, 4), 0);
    assert_eq!(plan.actions, [deploy(CANARY, 5)]);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Promoting));
    let plan = run(&spec, &plan.status, &rolling_world(5, 5), 5);
    assert_eq!(plan.status.stable_revision.as_deref(), Some(CANARY));
}

#[test]
fn with_analysis_only_the_last_batch_waits_for_a_non_inferior_verdict() {
    let spec = with_analysis(rolling_spec(5, 1), InconclusivePolicy::Pause);
    let early = run(&spec, &in_flight(&spec, 0, Some(0)), &rolling_world(5, 1), 10);
    assert_eq!(early.status.current_step_index, Some(1), "no verdict needed mid-way");
    let last = run(&spec, &in_flight(&spec, 3, Some(0)), &rolling_world(5, 4), 10);
    assert_eq!(last.status.current_step_index, Some(3));
    assert_eq!(condition(&last, "Progressing").reason, "AwaitingAnalysis");
    let proven = verdict(rolling_world(5, 4), Verdict::NonInferior);
    let last = run(&spec, &in_flight(&spec, 3, Some(0)), &proven, 10);
    assert_eq!(last.status.current_step_index, Some(4));
}

#[test]
fn a_newer_revision_waits_until_the_superseded_ones_pods_are_walked_back() {
    let spec = rolling_spec(5, 1);
    let mut observed = rolling_world(5, 2);
    observed.desired_revision = Some(NEXT.into());
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 10);
    assert_eq!(plan.status.canary_revision.as_deref(), Some(CANARY), "not replaced yet");
    assert_eq!(plan.actions, [scale(STABLE, 4)], "old pods come back within the surge");
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Deploy { revision, .. } if revision == NEXT))
    );

    let mut back = rolling_world(5, 0);
    back.desired_revision = Some(NEXT.into());
    let plan = run(&spec, &plan.status, &back, 20);
    assert_eq!(plan.status.canary_revision.as_deref(), Some(NEXT));
    assert!(reasons(&plan).contains(&"RevisionSuperseded"));
    let plan = run(&spec, &plan.status, &back, 25);
    assert_eq!(plan.actions, [deploy(NEXT, 1)]);
}

#[test]
fn going_back_to_stable_mid_rollout_walks_the_canary_back_within_bounds() {
    let spec = rolling_spec(5, 1);
    let mut observed = rolling_world(5, 2);
    observed.desired_revision = Some(STABLE.into());
    let plan = run(&spec, &in_flight(&spec, 1, Some(0)), &observed, 10);
    assert_eq!(plan.actions, [scale(STABLE, 4)]);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(plan.status.canary_revision.as_deref(), Some(CANARY));
}

/// Applies a plan's pod and Service actions to `world`; pods asked for
/// become available by the next reconcile.
fn apply(world: &mut Observed, actions: &[Action]) {
    for action in actions {
        match action {
            Action::Deploy { revision, replicas } | Action::Scale { revision, replicas } => {
                world.revisions.retain(|r| &r.revision != revision);
                world.revisions.push(ready(revision, *replicas));
            }
            Action::SelectRevisions { stable, canary } => {
                world.services.stable = Some(stable.clone());
                world.services.canary = Some(canary.clone());
            }
            _ => {}
        }
    }
}

fn pods_of(world: &Observed, revision: &str) -> i32 {
    world.revision(revision).map_or(0, |r| r.replicas)
}

#[test]
fn a_regression_at_any_batch_walks_all_the_way_back() {
    let spec = with_analysis(rolling_spec(5, 1), InconclusivePolicy::Pause);
    for index in 0..4 {
        let mut world = verdict(rolling_world(5, index + 1), Verdict::Regression);
        let mut status = in_flight(&spec, index, Some(0));
        for tick in 0..40 {
            let plan = run(&spec, &status, &world, 20 + tick * 5);
            apply(&mut world, &plan.actions);
            status = plan.status;
        }
        assert_eq!(status.phase, Some(RolloutPhase::Aborted), "batch {index}");
        assert_eq!(
            (pods_of(&world, STABLE), pods_of(&world, CANARY)),
            (5, 0),
            "batch {index}: {status:?}"
        );
    }
}
