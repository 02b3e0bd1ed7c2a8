//! A/B tests: one match step on the route, weights kept at 100/0, ended by
//! its duration, the analysis, or a human.

use crate::api::{AbTestStrategy, HeaderMatch, RequestMatch};
use crate::routing::fixtures::{beta_testers, canary_cookie};

use super::*;

/// The canary spec's router, turned into an A/B test of `duration`.
fn ab_spec(duration: Option<&str>) -> RolloutSpec {
    let mut spec = spec(standard_steps());
    let routing = spec
        .strategy
        .canary
        .take()
        .and_then(|c| c.traffic_routing)
        .unwrap_or_else(|| panic!("the fixture has a router"));
    spec.strategy.ab_test = Some(AbTestStrategy {
        traffic_routing: routing,
        matches: beta_testers(),
        duration: duration.map(SpecDuration::new),
        scale_down_delay: None,
    });
    spec
}

/// The A/B test under way: one canary pod, weights 100/0, and the match
/// rule on the route when `rule` says so.
fn ab_world(spec: &RolloutSpec, rule: bool) -> Observed {
    let mut observed = world(spec, 0);
    observed.route = Some(RouteState::Present {
        split: Some(TrafficSplit::ALL_STABLE),
        accepted: true,
        matches: rule.then(beta_testers),
        mirror: None,
    });
    observed
}

/// The plan a minute into a one-hour A/B test, with its rule in place,
/// whose analysis says `said`.
fn judged(said: Verdict) -> Plan {
    let spec = with_analysis(ab_spec(Some("1h")), InconclusivePolicy::Pause);
    let observed = verdict(ab_world(&spec, true), said);
    run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 60)
}

#[test]
fn ab_test_expands_into_one_match_step_held_for_its_duration() {
    let steps = steps_of(&ab_spec(Some("1h")));
    let hour = secs(3600);
    let expected = Step::Match {
        matches: beta_testers(),
        min: hour,
        max: Some(hour),
    };
    assert_eq!(steps.steps, [expected]);
    assert_eq!(steps.strategy, "abTest");
    assert!(steps.routed);
    assert_eq!(steps.weight_at(0), 0);
}

#[test]
fn ab_test_without_duration_or_analysis_waits_for_promote_with_the_match_in_place() {
    let steps = steps_of(&ab_spec(None));
    assert!(matches!(
        steps.steps.as_slice(),
        [Step::Match { .. }, Step::Pause { duration: None }]
    ));
    assert_eq!(steps.matches_at(1), Some(beta_testers().as_slice()));
    assert_eq!(steps.matches_at(2), None);
}

#[test]
fn ab_test_with_analysis_may_end_once_it_concludes_after_a_minute_for_the_first_data() {
    let steps = steps_of(&with_analysis(ab_spec(Some("1h")), InconclusivePolicy::Pause));
    let expected = Step::Match {
        matches: beta_testers(),
        min: FIRST_DATA_GRACE,
        max: Some(secs(3600)),
    };
    assert_eq!(steps.steps, [expected]);
    let short = steps_of(&with_analysis(ab_spec(Some("20s")), InconclusivePolicy::Pause));
    assert!(
        matches!(short.steps[0], Step::Match { min, .. } if min == secs(20)),
        "never past the maximum"
    );
}

#[test]
fn missing_data_in_the_first_minute_of_an_ab_test_is_not_yet_inconclusive() {
    let spec = with_analysis(ab_spec(Some("1h")), InconclusivePolicy::Pause);
    let status = in_flight(&spec, 0, Some(0));
    let observed = verdict(ab_world(&spec, true), Verdict::Inconclusive);
    let phase_at = |seconds| run(&spec, &status, &observed, seconds).status.phase;
    assert_eq!(phase_at(30), Some(RolloutPhase::Progressing));
    assert_eq!(phase_at(61), Some(RolloutPhase::Paused));
}

#[test]
fn ab_test_on_istio_is_a_match_step_like_on_gateway_api() {
    let gateway = steps_of(&ab_spec(Some("1h")));
    let mut spec = ab_spec(Some("1h"));
    if let Some(ab) = spec.strategy.ab_test.as_mut() {
        ab.traffic_routing.gateway_api = None;
        ab.traffic_routing.istio = Some(crate::api::IstioRouting {
            virtual_service: crate::api::VirtualServiceRef {
                name: "shop".into(),
                routes: vec![],
            },
        });
    }
    let istio = steps_of(&spec);
    assert!(istio.routed);
    assert_eq!(istio.steps, gateway.steps);
}

#[test]
fn ab_test_adds_the_match_rule_once_the_canary_is_ready_and_leaves_weights_alone() {
    let spec = ab_spec(Some("1h"));
    let plan = run(&spec, &in_flight(&spec, 0, None), &ab_world(&spec, false), 0);
    assert_eq!(plan.actions, [Action::SetMatches(Some(beta_testers()))]);
    assert_eq!(plan.status.strategy.as_deref(), Some("abTest"));
    assert_eq!(
        plan.status.step_started_at,
        Some(time(0)),
        "the hold counts from the write of the rule, in the same status write"
    );
}

#[test]
fn ab_test_holds_with_the_rule_in_place_until_its_duration() {
    let spec = ab_spec(Some("1h"));
    let observed = ab_world(&spec, true);
    let holding = run(&spec, &in_flight(&spec, 0, None), &observed, 0);
    assert!(holding.is_idle());
    assert_eq!(holding.status.step_started_at, Some(time(0)));
    assert_eq!(holding.requeue_after, Some(secs(3600)));
    let done = run(&spec, &holding.status, &observed, 3600);
    assert_eq!(
        done.actions,
        [deploy(CANARY, REPLICAS)],
        "promotion grows the canary first"
    );
    assert_eq!(done.status.phase, Some(RolloutPhase::Promoting));
}

#[test]
fn non_inferior_analysis_ends_the_ab_test_early() {
    let plan = judged(Verdict::NonInferior);
    assert_eq!(plan.actions, [deploy(CANARY, REPLICAS)]);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Promoting));
}

#[test]
fn regression_aborts_the_ab_test_by_removing_the_rule_in_one_write() {
    let plan = judged(Verdict::Regression);
    assert_eq!(plan.actions, [Action::SetMatches(None)]);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));
}

#[test]
fn promotion_removes_the_rule_after_moving_the_stable_service() {
    let spec = ab_spec(Some("1h"));
    let mut observed = ab_world(&spec, true);
    observed.revisions[1] = ready(CANARY, REPLICAS);
    let plan = run(&spec, &in_flight(&spec, 1, None), &observed, 0);
    assert_eq!(plan.actions, [select(CANARY, CANARY), Action::SetMatches(None)]);
    assert_eq!(plan.status.stable_revision.as_deref(), Some(CANARY));
}

#[test]
fn a_left_over_rule_is_removed_once_stable_serves_everything() {
    let spec = ab_spec(Some("1h"));
    let mut observed = steady_world(STABLE);
    observed.route = ab_world(&spec, true).route;
    let plan = run(&spec, &stable_status(), &observed, 0);
    assert_eq!(plan.actions, [Action::SetMatches(None)]);
    assert!(!is_true(&plan, "Healthy"));
}

#[test]
fn the_canary_service_is_not_repointed_while_the_rule_sends_it_requests() {
    let spec = ab_spec(Some("1h"));
    let mut observed = ab_world(&spec, true);
    observed.services.canary = Some(NEXT.into());
    let plan = run(&spec, &in_flight(&spec, 0, None), &observed, 0);
    assert_eq!(plan.actions, [Action::SetMatches(None)]);
}

#[test]
fn the_analysis_measures_the_requests_the_rule_sends_to_the_canary() {
    // No weight moves in an A/B test; the rule's requests are the evidence.
    let spec = with_analysis(ab_spec(Some("10m")), InconclusivePolicy::Pause);
    let status = in_flight(&spec, 0, Some(0));
    assert_eq!(status.canary_weight, Some(0));
    assert_eq!(measured_canary(&spec, &status).as_deref(), Some(CANARY));
}

#[test]
fn a_match_may_be_a_cookie_alone_but_not_a_cookie_and_a_cookie_header() {
    let mut spec = ab_spec(None);
    if let Some(ab) = spec.strategy.ab_test.as_mut() {
        ab.matches = vec![RequestMatch {
            headers: vec![],
            cookie: Some(canary_cookie()),
        }];
    }
    assert!(expand(&spec).is_ok());
    if let Some(ab) = spec.strategy.ab_test.as_mut() {
        ab.matches[0].headers.push(HeaderMatch {
            name: "Cookie".into(),
            value: "canary=always".into(),
        });
    }
    assert_eq!(
        expand(&spec).err(),
        Some(vec![SpecError::CookieHeaderTwice { index: 0 }])
    );
    if let Some(ab) = spec.strategy.ab_test.as_mut() {
        ab.matches[0] = RequestMatch {
            headers: vec![],
            cookie: None,
        };
    }
    assert_eq!(expand(&spec).err(), Some(vec![SpecError::EmptyMatch { index: 0 }]));
}
