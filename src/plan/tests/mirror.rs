//! Mirroring as the first stage of a canary on Istio: a copy of traffic to
//! the canary while users stay on stable, then the weight steps.

use crate::api::{IstioRouting, MirrorStage, VirtualServiceRef};

use super::*;

fn mirrored_spec(percent: i32) -> RolloutSpec {
    let mut spec = spec(vec![CanaryStep::weight(20, hold("30s", None))]);
    if let Some(canary) = spec.strategy.canary.as_mut() {
        canary.traffic_routing = Some(TrafficRouting {
            gateway_api: None,
            istio: Some(IstioRouting {
                virtual_service: VirtualServiceRef {
                    name: "shop".into(),
                    routes: vec![],
                },
            }),
        });
        canary.mirror = Some(MirrorStage {
            percent: Some(percent),
            hold: hold("60s", None),
        });
    }
    spec
}

fn mirroring(observed: Observed, percent: Option<i32>) -> Observed {
    let mut observed = observed;
    if let Some(RouteState::Present { mirror, .. }) = observed.route.as_mut() {
        *mirror = percent;
    }
    observed
}

#[test]
fn the_mirror_is_a_first_stage_at_weight_zero() {
    let steps = steps_of(&mirrored_spec(50));
    assert_eq!(steps.steps.len(), 2);
    assert_eq!(steps.mirror_at(0), Some(50));
    assert_eq!(steps.weight_at(0), 0);
    assert_eq!(steps.mirror_at(1), None);
}

#[test]
fn the_first_stage_mirrors_without_moving_users() {
    let spec = mirrored_spec(50);
    let plan = run(&spec, &in_flight(&spec, 0, None), &world(&spec, 0), 0);
    assert_eq!(plan.actions, [Action::SetMirror(Some(50))]);
    assert!(reasons(&plan).contains(&"TrafficMirrored"));
    let held = run(&spec, &plan.status, &mirroring(world(&spec, 0), Some(50)), 1);
    assert!(held.is_idle());
    assert_eq!(condition(&held, "Progressing").reason, "Holding");
}

#[test]
fn the_mirror_stops_before_the_first_weight_moves() {
    let spec = mirrored_spec(50);
    let observed = mirroring(world(&spec, 0), Some(50));
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 60);
    assert_eq!(plan.status.current_step_index, Some(1));
    assert_eq!(plan.actions, [deploy(CANARY, 2)], "the pods for 20% first");
    let mut grown = observed.clone();
    grown.revisions[1] = ready(CANARY, 2);
    let plan = run(&spec, &plan.status, &grown, 65);
    assert_eq!(
        plan.actions,
        [Action::SetMirror(None)],
        "no weight while the copy still flows"
    );
    let stopped = mirroring(grown, None);
    let next = run(&spec, &plan.status, &stopped, 66);
    assert_eq!(next.actions, [set_weights(20)]);
}

#[test]
fn an_abort_stops_the_mirror_with_the_weights() {
    let spec = mirrored_spec(100);
    let mut observed = mirroring(world(&spec, 0), Some(100));
    observed.request = request(RequestedAction::Abort, 5);
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 6);
    assert_eq!(plan.actions, [Action::SetMirror(None)]);
}

#[test]
fn clearing_canary_traffic_takes_weights_match_rule_and_mirror_off_in_one_place() {
    let everything = RouteState::Present {
        split: Some(TrafficSplit::canary_percent(20)),
        accepted: true,
        matches: Some(vec![]),
        mirror: Some(50),
    };
    assert_eq!(
        clear_canary_traffic(Some(&everything)),
        [set_weights(0), Action::SetMatches(None), Action::SetMirror(None)],
        "users' share first, then the rule, then the copy"
    );
    let only_mirror = RouteState::Present {
        split: Some(TrafficSplit::ALL_STABLE),
        accepted: true,
        matches: None,
        mirror: Some(50),
    };
    assert_eq!(clear_canary_traffic(Some(&only_mirror)), [Action::SetMirror(None)]);
    let clear = RouteState::Present {
        split: Some(TrafficSplit::ALL_STABLE),
        accepted: true,
        matches: None,
        mirror: None,
    };
    assert!(clear_canary_traffic(Some(&clear)).is_empty());
    assert!(clear_canary_traffic(Some(&RouteState::NotFound)).is_empty());
    assert!(clear_canary_traffic(None).is_empty());
}

#[test]
fn a_canary_superseded_in_its_mirror_stage_stops_the_mirror() {
    let spec = mirrored_spec(50);
    let observed = mirroring(world(&spec, 0), Some(50));
    let mut newer = observed.clone();
    newer.desired_revision = Some("c0ffee".into());
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &newer, 10);
    assert!(
        plan.actions.contains(&Action::SetMirror(None)),
        "the old canary's copy of traffic stops: {:?}",
        plan.actions
    );
}

#[test]
fn a_mirror_left_on_a_settled_route_is_taken_off_before_healthy() {
    let spec = mirrored_spec(50);
    let observed = mirroring(steady_world(STABLE), Some(50));
    let plan = run(&spec, &stable_status(), &observed, 10);
    assert_eq!(plan.actions, [Action::SetMirror(None)]);
    assert_ne!(
        condition(&plan, "Healthy").status,
        "True",
        "not healthy while the copy flows"
    );
}

#[test]
fn mirroring_needs_istio() {
    let mut spec = mirrored_spec(50);
    if let Some(canary) = spec.strategy.canary.as_mut() {
        canary.traffic_routing = spec_router();
    }
    assert_eq!(expand(&spec).err().unwrap_or_default(), [SpecError::MirrorNeedsIstio]);
}

fn spec_router() -> Option<TrafficRouting> {
    spec(standard_steps()).strategy.canary.and_then(|c| c.traffic_routing)
}
