//! Specifications of the step engine, one transition per test. Fixtures
//! build a 10-replica Rollout on a Gateway API route, with steps 10% → 50%
//! → pause unless a test says otherwise.

mod ab_test;
mod analysis;
mod blue_green;
mod hooks;
mod kstatus;
mod lifecycle;
mod mirror;
mod queue;
mod requests;
mod rolling;
mod scaling;
mod steps;
mod totality;
mod writes;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::analysis::Verdict;
use crate::api::conditions::find_condition;
use crate::api::{
    AbortReason, AnalysisTemplateRef, CanaryStep, CanaryStrategy, Duration as SpecDuration, GatewayApiRouting, Hold,
    InconclusivePolicy, LocalObjectName, ManualRequest, RequestedAction, RolloutAnalysis, RolloutPhase, RolloutSpec,
    RolloutStatus, RolloutStrategy, ServiceRef, TrafficRouting,
};

use super::*;

pub const STABLE: &str = "5ab1e00001";
pub const CANARY: &str = "ca9a7e0002";
pub const NEXT: &str = "9e77000003";
pub const REPLICAS: i32 = 10;

/// A fixed origin so that times in tests read as offsets in seconds.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn time(seconds: i64) -> Time {
    Time(at(seconds))
}

pub fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

pub fn hold(min: &str, max: Option<&str>) -> Option<Hold> {
    Some(Hold {
        min: Some(SpecDuration::new(min)),
        max: max.map(SpecDuration::new),
    })
}

/// 10% for 60–600 s, 50% for 120–600 s, then a pause until promoted.
pub fn standard_steps() -> Vec<CanaryStep> {
    vec![
        CanaryStep::weight(10, hold("60s", Some("600s"))),
        CanaryStep::weight(50, hold("120s", Some("600s"))),
        CanaryStep::pause(None),
    ]
}

pub fn spec(steps: Vec<CanaryStep>) -> RolloutSpec {
    RolloutSpec {
        workload_ref: None,
        template: Some(PodTemplateSpec::default()),
        replicas: REPLICAS,
        service: ServiceRef {
            name: "shop".into(),
            port: 80,
            target_port: None,
        },
        strategy: RolloutStrategy {
            canary: Some(CanaryStrategy {
                traffic_routing: Some(TrafficRouting {
                    gateway_api: Some(GatewayApiRouting {
                        http_route: LocalObjectName { name: "shop".into() },
                    }),
                    istio: None,
                }),
                steps,
                scale_down_delay: None,
                mirror: None,
            }),
            ..RolloutStrategy::default()
        },
        analysis: None,
        webhooks: Vec::new(),
    }
}

pub fn with_analysis(mut spec: RolloutSpec, policy: InconclusivePolicy) -> RolloutSpec {
    spec.analysis = Some(RolloutAnalysis {
        templates: vec![AnalysisTemplateRef {
            name: "http-errors".into(),
            cluster_scope: false,
        }],
        args: vec![],
        on_inconclusive: policy,
        dry_run: false,
        dry_run_metrics: vec![],
    });
    spec
}

pub fn unrouted(mut spec: RolloutSpec) -> RolloutSpec {
    if let Some(canary) = spec.strategy.canary.as_mut() {
        canary.traffic_routing = None;
    }
    spec
}

pub fn steps_of(spec: &RolloutSpec) -> StepPlan {
    expand(spec).unwrap_or_else(|e| panic!("fixture spec is invalid: {e:?}"))
}

pub fn ready(revision: &str, replicas: i32) -> RevisionState {
    RevisionState {
        revision: revision.into(),
        replicas,
        available_replicas: replicas,
        current: true,
    }
}

pub fn route(canary_weight: i32, accepted: bool) -> Option<RouteState> {
    Some(RouteState::Present {
        split: Some(TrafficSplit::canary_percent(canary_weight)),
        accepted,
        matches: None,
        mirror: None,
    })
}

/// An in-flight rollout whose world already matches `weight` for `spec`.
pub fn world(spec: &RolloutSpec, weight: i32) -> Observed {
    let steps = steps_of(spec);
    Observed {
        generation: Some(1),
        desired_revision: Some(CANARY.into()),
        revisions: vec![
            ready(STABLE, steps.stable_replicas(weight)),
            ready(CANARY, steps.canary_replicas(weight)),
        ],
        services: ServiceSelectors {
            stable: Some(STABLE.into()),
            canary: Some(CANARY.into()),
        },
        route: if steps.routed { route(weight, true) } else { None },
        ..Observed::default()
    }
}

/// One revision serving everything.
pub fn steady_world(revision: &str) -> Observed {
    Observed {
        generation: Some(1),
        desired_revision: Some(revision.into()),
        revisions: vec![ready(revision, REPLICAS)],
        services: ServiceSelectors {
            stable: Some(revision.into()),
            canary: Some(revision.into()),
        },
        route: route(0, true),
        ..Observed::default()
    }
}

/// The status of a rollout at step `index` whose hold began at `started`.
pub fn in_flight(spec: &RolloutSpec, index: i32, started: Option<i64>) -> RolloutStatus {
    let steps = steps_of(spec);
    RolloutStatus {
        phase: Some(RolloutPhase::Progressing),
        stable_revision: Some(STABLE.into()),
        canary_revision: Some(CANARY.into()),
        current_step_index: Some(index),
        steps_hash: Some(steps.hash.clone()),
        step_started_at: started.map(time),
        canary_weight: usize::try_from(index).ok().map(|i| steps.weight_at(i)),
        ..RolloutStatus::default()
    }
}

pub fn stable_status() -> RolloutStatus {
    RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some(STABLE.into()),
        ..RolloutStatus::default()
    }
}

pub fn request(action: RequestedAction, seconds: i64) -> Option<ManualRequest> {
    Some(ManualRequest::new(action, at(seconds), None))
}

pub fn verdict(observed: Observed, verdict: Verdict) -> Observed {
    Observed {
        verdict: Some(verdict),
        ..observed
    }
}

/// The plan at `seconds` for a canary at step `index` of `spec` (its hold
/// begun at 0), in a world at that step's weight changed by `world_is`.
pub fn at_step(spec: &RolloutSpec, index: usize, seconds: i64, world_is: impl FnOnce(Observed) -> Observed) -> Plan {
    let observed = world_is(world(spec, steps_of(spec).weight_at(index)));
    let index = i32::try_from(index).unwrap_or(i32::MAX);
    run(spec, &in_flight(spec, index, Some(0)), &observed, seconds)
}

/// Runs the engine and checks what must hold for every plan.
pub fn run(spec: &RolloutSpec, status: &RolloutStatus, observed: &Observed, now: i64) -> Plan {
    let plan = plan(spec, Some(status), observed, at(now));
    assert_one_write_of_each_route_part(&plan);
    plan
}

/// A plan writes the weights at most once, and Siskin's match rule and
/// the mirror at most once each.
pub fn assert_one_write_of_each_route_part(plan: &Plan) {
    let count = |part: fn(&Action) -> bool| plan.actions.iter().filter(|a| part(a)).count();
    let weights = count(|a| matches!(a, Action::SetWeights(_)));
    let matches = count(|a| matches!(a, Action::SetMatches(_)));
    let mirror = count(|a| matches!(a, Action::SetMirror(_)));
    assert!(
        weights <= 1 && matches <= 1 && mirror <= 1,
        "a route part written twice: {:?}",
        plan.actions
    );
}

pub fn condition<'a>(plan: &'a Plan, type_: &str) -> &'a Condition {
    find_condition(&plan.status.conditions, type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", plan.status.conditions))
}

pub fn is_true(plan: &Plan, type_: &str) -> bool {
    condition(plan, type_).status == "True"
}

pub fn reasons(plan: &Plan) -> Vec<&'static str> {
    plan.events.iter().map(|e| e.reason).collect()
}

pub fn set_weights(canary: i32) -> Action {
    Action::SetWeights(TrafficSplit::canary_percent(canary))
}

pub fn deploy(revision: &str, replicas: i32) -> Action {
    Action::Deploy {
        revision: revision.into(),
        replicas,
    }
}

/// Points the stable and canary Services at these revisions.
pub fn select(stable: &str, canary: &str) -> Action {
    Action::SelectRevisions {
        stable: stable.into(),
        canary: canary.into(),
    }
}

pub fn scale(revision: &str, replicas: i32) -> Action {
    Action::Scale {
        revision: revision.into(),
        replicas,
    }
}
