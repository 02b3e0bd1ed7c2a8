//! The exact patches the HTTPRoute router sends, and what they leave alone.

use serde_json::{Value, json};

use super::*;
use crate::api::{HeaderMatch, RequestMatch};
use crate::routing::fixtures::{
    self, STEP_SPLITS, applied, backends, beta_testers, canary_cookie, ops, reweighted, weighted_and_accepted,
};

fn accepted_at(generation: i64) -> Value {
    json!({"parents": [{
        "parentRef": {"name": "gw"},
        "controllerName": "example.com/gateway",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": generation}]
    }]})
}

/// A route with a debug rule to another Service, the weighted rule, and an
/// admin rule that only reaches stable.
fn route_json(stable: i32, canary: i32) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "shop", "namespace": "prod", "generation": 4},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [
                {"matches": [{"headers": [{"name": "x-debug", "value": "1"}]}],
                 "backendRefs": [{"name": "debug", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "filters": [{"type": "RequestHeaderModifier",
                              "requestHeaderModifier": {"add": [{"name": "x-via", "value": "gw"}]}}],
                 "backendRefs": [{"name": "shop-stable", "port": 80, "weight": stable},
                                 {"name": "shop-canary", "port": 80, "weight": canary}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                 "backendRefs": [{"name": "shop-stable", "port": 80}]}
            ]
        },
        "status": accepted_at(4)
    })
}

fn route(value: Value) -> HttpRoute {
    serde_json::from_value(value).expect("fixture is a valid HTTPRoute")
}

fn patch_json(value: Value, split: TrafficSplit) -> Value {
    let patch = weight_patch(&route(value), &backends(), split).expect("route has both backends");
    serde_json::to_value(patch).unwrap_or_default()
}

fn guarded(rule: usize, index: usize, name: &str, from: i32, to: i32) -> Vec<Value> {
    let at = format!("/spec/rules/{rule}/backendRefs/{index}");
    fixtures::guarded(&at, "name", name, from, to)
}

#[test]
fn each_step_sends_its_split_with_guards_on_names_and_weights() {
    for (step, (stable, canary), split) in STEP_SPLITS {
        let patch = patch_json(route_json(stable, canary), split);
        let expected = ops(vec![
            guarded(1, 0, "shop-stable", stable, split.stable),
            guarded(1, 1, "shop-canary", canary, split.canary),
        ]);
        assert_eq!(patch, expected, "{step}");
    }
}

#[test]
fn abort_covers_every_rule_with_both_backends_in_one_patch() {
    let mut value = route_json(50, 50);
    let weighted = value["spec"]["rules"][1].clone();
    if let Some(rules) = value["spec"]["rules"].as_array_mut() {
        rules.push(weighted);
    }
    let patch = patch_json(value, TrafficSplit::ALL_STABLE);
    let expected = ops(vec![
        guarded(1, 0, "shop-stable", 50, 100),
        guarded(1, 1, "shop-canary", 50, 0),
        guarded(3, 0, "shop-stable", 50, 100),
        guarded(3, 1, "shop-canary", 50, 0),
    ]);
    assert_eq!(patch, expected);
}

#[test]
fn other_rules_matches_and_filters_stay_untouched() {
    let before = route_json(100, 0);
    let patch = weight_patch(&route(before.clone()), &backends(), TrafficSplit::canary_percent(10))
        .expect("route has both backends");
    let expected = reweighted(
        before.clone(),
        "/spec/rules/1/backendRefs",
        TrafficSplit::canary_percent(10),
    );
    assert_eq!(applied(&before, &patch), expected);
}

#[test]
fn a_concurrent_edit_fails_the_patch_instead_of_being_overwritten() {
    let read = route_json(100, 0);
    let patch =
        weight_patch(&route(read), &backends(), TrafficSplit::canary_percent(10)).expect("route has both backends");
    // Between our read and our write, someone reordered the backends.
    let mut live = route_json(100, 0);
    live["spec"]["rules"][1]["backendRefs"][0]["name"] = json!("shop-canary");
    live["spec"]["rules"][1]["backendRefs"][1]["name"] = json!("shop-stable");
    assert!(json_patch::patch(&mut live, &patch).is_err());
}

#[test]
fn missing_weights_are_added_rather_than_tested() {
    let mut value = route_json(0, 0);
    for backend in value["spec"]["rules"][1]["backendRefs"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        backend.as_object_mut().map(|b| b.remove("weight"));
    }
    let patch = patch_json(value, TrafficSplit::canary_percent(10));
    let expected = json!([
        {"op": "test", "path": "/spec/rules/1/backendRefs/0/name", "value": "shop-stable"},
        {"op": "add", "path": "/spec/rules/1/backendRefs/0/weight", "value": 90},
        {"op": "test", "path": "/spec/rules/1/backendRefs/1/name", "value": "shop-canary"},
        {"op": "add", "path": "/spec/rules/1/backendRefs/1/weight", "value": 10},
    ]);
    assert_eq!(patch, expected);
}

#[test]
fn a_route_naming_neither_service_is_a_missing_backend() {
    let mut value = route_json(100, 0);
    value["spec"]["rules"] = json!([{"backendRefs": [{"name": "other", "port": 80}]}]);
    let err = weight_patch(&route(value), &backends(), TrafficSplit::ALL_STABLE);
    assert!(matches!(&err, Err(RoutingError::MissingBackend { .. })), "{err:?}");
    assert_eq!(err.err().map(|e| e.metric_label()), Some("missing_backend"));
}

#[test]
fn a_rule_reaching_only_stable_is_not_weighted() {
    let mut value = route_json(100, 0);
    value["spec"]["rules"] = json!([{"backendRefs": [{"name": "shop-stable", "port": 80}]}]);
    let state = route_state(&route(value), &backends());
    // The engine names the route itself in its condition.
    let expected = "no rule sends traffic to both shop-stable and shop-canary";
    assert_eq!(
        state,
        RouteState::MissingBackends {
            message: expected.into()
        }
    );
}

#[test]
fn a_same_named_service_in_another_namespace_is_not_ours() {
    let mut value = route_json(100, 0);
    value["spec"]["rules"][1]["backendRefs"][1]["namespace"] = json!("staging");
    let err = weight_patch(&route(value), &backends(), TrafficSplit::ALL_STABLE);
    assert!(matches!(err, Err(RoutingError::MissingBackend { .. })));
}

#[test]
fn reads_the_split_and_acceptance() {
    let state = route_state(&route(route_json(75, 25)), &backends());
    assert_eq!(state, weighted_and_accepted(75, 25));
}

#[test]
fn rules_that_disagree_have_no_single_split() {
    let mut value = route_json(90, 10);
    let mut other = value["spec"]["rules"][1].clone();
    other["backendRefs"][0]["weight"] = json!(50);
    other["backendRefs"][1]["weight"] = json!(50);
    if let Some(rules) = value["spec"]["rules"].as_array_mut() {
        rules.push(other);
    }
    let state = route_state(&route(value), &backends());
    assert!(matches!(state, RouteState::Present { split: None, .. }));
}

#[test]
fn accepted_needs_every_parent_at_the_current_generation() {
    assert!(accepted(&route(route_json(100, 0))));
    let mut stale = route_json(100, 0);
    stale["status"] = accepted_at(3);
    assert!(!accepted(&route(stale)));
    let mut two_parents = route_json(100, 0);
    let mut parents = accepted_at(4)["parents"].clone();
    if let Some(list) = parents.as_array_mut() {
        let mut second = list[0].clone();
        second["conditions"][0]["status"] = json!("False");
        list.push(second);
    }
    two_parents["status"]["parents"] = parents;
    assert!(!accepted(&route(two_parents)));
    let mut no_status = route_json(100, 0);
    no_status["status"] = Value::Null;
    assert!(!accepted(&route(no_status)));
}

const AB_RULE: &str = "siskin-ab-shop";

fn versioned(mut value: Value) -> Value {
    value["metadata"]["resourceVersion"] = json!("42");
    value
}

fn match_patch_json(value: Value, wanted: Option<&[RequestMatch]>) -> Option<Value> {
    let patch = match_patch(&route(value), &backends(), AB_RULE, wanted).expect("route has both backends");
    patch.map(|p| serde_json::to_value(p).unwrap_or_default())
}

/// The route after the match patch, as the API server would apply it.
fn with_matches(mut value: Value, wanted: Option<&[RequestMatch]>) -> Value {
    if let Ok(Some(patch)) = match_patch(&route(value.clone()), &backends(), AB_RULE, wanted) {
        json_patch::patch(&mut value, &patch).expect("the patch applies to the route it was made from");
    }
    value
}

#[test]
fn ab_rule_is_appended_with_exact_headers_to_the_canary_guarded_by_the_version_read() {
    let patch = match_patch_json(versioned(route_json(100, 0)), Some(&beta_testers()));
    let expected = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
        {"op": "add", "path": "/spec/rules/-", "value": {
            "name": AB_RULE,
            "matches": [{"headers": [{"type": "Exact", "name": "x-beta", "value": "true"}]}],
            "backendRefs": [{"name": "shop-canary", "port": 80, "weight": 1}],
        }},
    ]);
    assert_eq!(patch, Some(expected));
}

#[test]
fn ab_rule_in_place_needs_no_write() {
    let with_rule = with_matches(versioned(route_json(100, 0)), Some(&beta_testers()));
    assert_eq!(match_patch_json(with_rule, Some(&beta_testers())), None);
    assert_eq!(match_patch_json(route_json(100, 0), None), None);
}

#[test]
fn ab_rule_is_read_back_from_the_route() {
    let with_rule = route(with_matches(versioned(route_json(100, 0)), Some(&beta_testers())));
    assert_eq!(match_rule_matches(&with_rule, AB_RULE), Some(beta_testers()));
    assert_eq!(match_rule_matches(&route(route_json(100, 0)), AB_RULE), None);
}

#[test]
fn ab_rule_is_removed_by_name_with_a_test_at_its_index() {
    let with_rule = with_matches(versioned(route_json(100, 0)), Some(&beta_testers()));
    let expected = json!([
        {"op": "test", "path": "/spec/rules/3/name", "value": AB_RULE},
        {"op": "remove", "path": "/spec/rules/3"},
    ]);
    assert_eq!(match_patch_json(with_rule, None), Some(expected));
}

#[test]
fn removing_the_ab_rule_leaves_exactly_the_users_route() {
    let original = versioned(route_json(100, 0));
    let with_rule = with_matches(original.clone(), Some(&beta_testers()));
    assert_eq!(with_rule["spec"]["rules"].as_array().map(Vec::len), Some(4));
    assert_eq!(with_matches(with_rule, None), original);
}

#[test]
fn changed_matches_replace_the_ab_rule_instead_of_adding_another() {
    let with_rule = with_matches(versioned(route_json(100, 0)), Some(&beta_testers()));
    let other = vec![RequestMatch {
        cookie: None,
        headers: vec![HeaderMatch {
            name: "x-group".into(),
            value: "b".into(),
        }],
    }];
    let replaced = with_matches(with_rule, Some(&other));
    let rules = replaced["spec"]["rules"].as_array().cloned().unwrap_or_default();
    assert_eq!(rules.len(), 4);
    assert_eq!(match_rule_matches(&route(replaced), AB_RULE), Some(other));
}

#[test]
fn ab_rule_does_not_count_as_a_weighted_rule() {
    let with_rule = route(with_matches(versioned(route_json(90, 10)), Some(&beta_testers())));
    let state = route_state(&with_rule, &backends());
    assert!(
        matches!(state, RouteState::Present { split: Some(s), .. } if s == TrafficSplit::canary_percent(10)),
        "{state:?}"
    );
}

/// Requests carrying the cookie `canary=always`.
fn cookie_bearers() -> Vec<RequestMatch> {
    vec![RequestMatch {
        headers: vec![],
        cookie: Some(canary_cookie()),
    }]
}

#[test]
fn a_cookie_is_matched_by_a_regular_expression_on_the_cookie_header_and_read_back() {
    let with_rule = with_matches(versioned(route_json(100, 0)), Some(&cookie_bearers()));
    let rule = with_rule["spec"]["rules"][3].clone();
    assert_eq!(
        rule["matches"],
        json!([{"headers": [{"type": "RegularExpression", "name": "cookie",
                             "value": r"^(.*;\s*)?canary=always(;.*)?$"}]}])
    );
    assert_eq!(
        match_rule_matches(&route(with_rule.clone()), AB_RULE),
        Some(cookie_bearers())
    );
    assert_eq!(
        match_patch_json(with_rule, Some(&cookie_bearers())),
        None,
        "in place: no write"
    );
}
