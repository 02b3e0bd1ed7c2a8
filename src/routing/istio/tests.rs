//! The exact patches the VirtualService router sends, and what they leave alone.

use serde_json::{Value, json};

use crate::api::{HeaderMatch, RequestMatch};

use super::*;
use crate::routing::fixtures::{
    self, STEP_SPLITS, applied, backends, beta_testers, canary_cookie, ops, reweighted, weighted_and_accepted,
};

fn primary() -> Vec<String> {
    vec!["primary".into()]
}

/// A debug route to another Service, the weighted `primary` route (its
/// canary host fully qualified), and a fallback that only reaches stable.
fn vs_json(stable: i32, canary: i32) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "shop", "namespace": "prod", "generation": 2},
        "spec": {
            "hosts": ["shop.example.com"],
            "gateways": ["gw"],
            "http": [
                {"name": "debug",
                 "match": [{"headers": {"x-debug": {"exact": "1"}}}],
                 "route": [{"destination": {"host": "debug"}}]},
                {"name": "primary",
                 "retries": {"attempts": 3},
                 "route": [
                    {"destination": {"host": "shop-stable", "port": {"number": 80}}, "weight": stable},
                    {"destination": {"host": "shop-canary.prod.svc.cluster.local", "port": {"number": 80}},
                     "weight": canary}]},
                {"name": "fallback", "route": [{"destination": {"host": "shop-stable"}}]}
            ]
        }
    })
}

fn vs(value: Value) -> VirtualService {
    serde_json::from_value(value).expect("fixture is a valid VirtualService")
}

fn patch_json(value: Value, split: TrafficSplit) -> Value {
    let patch = weight_patch(&vs(value), &primary(), &backends(), split).expect("primary has both");
    serde_json::to_value(patch).unwrap_or_default()
}

fn guarded(index: usize, host: &str, from: i32, to: i32) -> Vec<Value> {
    let at = format!("/spec/http/1/route/{index}");
    fixtures::guarded(&at, "destination/host", host, from, to)
}

const CANARY_HOST: &str = "shop-canary.prod.svc.cluster.local";
const MATCH_ROUTE: &str = "siskin-ab-shop";

#[test]
fn each_step_sends_its_split_with_guards_on_hosts_and_weights() {
    for (step, (stable, canary), split) in STEP_SPLITS {
        let patch = patch_json(vs_json(stable, canary), split);
        let expected = ops(vec![
            guarded(0, "shop-stable", stable, split.stable),
            guarded(1, CANARY_HOST, canary, split.canary),
        ]);
        assert_eq!(patch, expected, "{step}");
    }
}

#[test]
fn other_routes_and_fields_stay_untouched() {
    let before = vs_json(100, 0);
    let patch = weight_patch(
        &vs(before.clone()),
        &primary(),
        &backends(),
        TrafficSplit::canary_percent(10),
    )
    .expect("primary has both");
    let expected = reweighted(before.clone(), "/spec/http/1/route", TrafficSplit::canary_percent(10));
    assert_eq!(applied(&before, &patch), expected);
}

#[test]
fn without_route_names_every_route_with_both_hosts_is_weighted() {
    let patch = weight_patch(&vs(vs_json(100, 0)), &[], &backends(), TrafficSplit::canary_percent(10))
        .expect("primary has both");
    let expected = ops(vec![guarded(0, "shop-stable", 100, 90), guarded(1, CANARY_HOST, 0, 10)]);
    assert_eq!(serde_json::to_value(patch).unwrap_or_default(), expected);
}

#[test]
fn an_unknown_route_name_is_an_error() {
    let names = vec!["nope".to_string()];
    let err = weight_patch(&vs(vs_json(100, 0)), &names, &backends(), TrafficSplit::ALL_STABLE);
    assert_eq!(err.err().map(|e| e.metric_label()), Some("unknown_route_name"));
}

#[test]
fn a_named_route_without_both_hosts_is_a_missing_backend() {
    let names = vec!["fallback".to_string()];
    let state = route_state(&vs(vs_json(100, 0)), &names, &backends(), MATCH_ROUTE);
    assert!(matches!(state, RouteState::MissingBackends { .. }), "{state:?}");
}

#[test]
fn a_host_in_another_namespace_is_not_ours() {
    let mut value = vs_json(100, 0);
    value["spec"]["http"][1]["route"][1]["destination"]["host"] = json!("shop-canary.staging.svc.cluster.local");
    let err = weight_patch(&vs(value), &primary(), &backends(), TrafficSplit::ALL_STABLE);
    assert!(matches!(err, Err(RoutingError::MissingBackend { .. })));
}

#[test]
fn reads_the_split() {
    let state = route_state(&vs(vs_json(75, 25)), &primary(), &backends(), MATCH_ROUTE);
    assert_eq!(state, weighted_and_accepted(75, 25));
}

#[test]
fn acceptance_follows_istio_status_when_there_is_one() {
    assert!(accepted(&vs(vs_json(100, 0))), "no status: nothing to wait for");
    let with_status = |status: Value| {
        let mut value = vs_json(100, 0);
        value["status"] = status;
        accepted(&vs(value))
    };
    assert!(with_status(json!({"observedGeneration": 2})));
    assert!(with_status(json!({"observedGeneration": "2"})));
    assert!(!with_status(json!({"observedGeneration": 1})));
    assert!(!with_status(json!({"observedGeneration": 2,
        "validationMessages": [{"level": "ERROR", "type": {"code": "IST0101"}}]})));
    assert!(!with_status(json!({"observedGeneration": 2,
        "conditions": [{"type": "Reconciled", "status": "False"}]})));
}

fn match_patch_json(value: Value, wanted: Option<&[RequestMatch]>) -> Option<Value> {
    let patch = match_patch(&vs(value), &primary(), &backends(), MATCH_ROUTE, wanted).expect("primary has both");
    patch.map(|p| serde_json::to_value(p).unwrap_or_default())
}

#[test]
fn an_ab_test_puts_its_named_route_first_with_the_users_canary_destination() {
    let mut value = vs_json(100, 0);
    value["metadata"]["resourceVersion"] = json!("41");
    let wanted = beta_testers();
    let patch = match_patch_json(value.clone(), Some(&wanted));
    let route = json!({
        "name": MATCH_ROUTE,
        "match": [{"headers": {"x-beta": {"exact": "true"}}}],
        "route": [{"destination": {"host": CANARY_HOST, "port": {"number": 80}}}],
    });
    let expected = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "add", "path": "/spec/http/0", "value": route},
    ]);
    assert_eq!(patch, Some(expected.clone()));

    // Applied, the user's routes follow unchanged, and the route reads back.
    let mut after = value.clone();
    let patch: json_patch::Patch = serde_json::from_value(expected).expect("a JSON Patch");
    json_patch::patch(&mut after, &patch).expect("applies to the object it was built from");
    let mut users = after["spec"]["http"].as_array().cloned().unwrap_or_default();
    users.remove(0);
    assert_eq!(Value::Array(users), value["spec"]["http"]);
    let state = route_state(&vs(after.clone()), &primary(), &backends(), MATCH_ROUTE);
    assert!(
        matches!(&state, RouteState::Present { matches: Some(m), split: Some(s), .. }
            if *m == wanted && *s == TrafficSplit::ALL_STABLE),
        "{state:?}"
    );
    assert_eq!(
        match_patch_json(after, Some(&wanted)),
        None,
        "nothing to do once it is there"
    );
}

#[test]
fn headers_stored_in_another_order_are_the_same_match() {
    let wanted = vec![RequestMatch {
        cookie: None,
        headers: vec![
            HeaderMatch {
                name: "x-tier".into(),
                value: "gold".into(),
            },
            HeaderMatch {
                name: "x-beta".into(),
                value: "true".into(),
            },
        ],
    }];
    let mut value = vs_json(100, 0);
    let http = value["spec"]["http"].as_array_mut().expect("http");
    http.insert(
        0,
        json!({"name": MATCH_ROUTE,
               "match": [{"headers": {"x-tier": {"exact": "gold"}, "x-beta": {"exact": "true"}}}],
               "route": [{"destination": {"host": CANARY_HOST}}]}),
    );
    assert_eq!(
        match_patch_json(value, Some(&wanted)),
        None,
        "no rewrite for the order alone"
    );
}

#[test]
fn promote_or_abort_removes_only_the_named_route() {
    let mut value = vs_json(100, 0);
    let http = value["spec"]["http"].as_array_mut().expect("http");
    http.insert(
        0,
        json!({"name": MATCH_ROUTE, "match": [{"headers": {"x-beta": {"exact": "true"}}}],
               "route": [{"destination": {"host": CANARY_HOST}}]}),
    );
    let expected = json!([
        {"op": "test", "path": "/spec/http/0/name", "value": MATCH_ROUTE},
        {"op": "remove", "path": "/spec/http/0"},
    ]);
    assert_eq!(match_patch_json(value, None), Some(expected));
    assert_eq!(
        match_patch_json(vs_json(100, 0), None),
        None,
        "no route, nothing to remove"
    );
}

#[test]
fn mirroring_copies_traffic_to_the_canary_destination_as_the_route_names_it() {
    let mut original = vs_json(100, 0);
    original["metadata"]["resourceVersion"] = json!("7");
    let patch = mirror_patch(&vs(original.clone()), &primary(), &backends(), Some(50))
        .expect("primary has both")
        .expect("a change");
    assert_eq!(
        serde_json::to_value(&patch).unwrap_or_default(),
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
            {"op": "add", "path": "/spec/http/1/mirror", "value": {"host": CANARY_HOST, "port": {"number": 80}}},
            {"op": "add", "path": "/spec/http/1/mirrorPercentage", "value": {"value": 50.0}},
        ])
    );
    let mirrored = applied(&original, &patch);
    assert_eq!(mirror_percent(&vs(mirrored.clone()), &primary(), &backends()), Some(50));
    let state = route_state(&vs(mirrored.clone()), &primary(), &backends(), MATCH_ROUTE);
    assert!(matches!(state, RouteState::Present { mirror: Some(50), .. }));

    let removal = mirror_patch(&vs(mirrored.clone()), &primary(), &backends(), None)
        .expect("primary has both")
        .expect("a change");
    assert_eq!(
        applied(&mirrored, &removal),
        original,
        "the VirtualService is as the user wrote it"
    );
    assert_eq!(
        mirror_patch(&vs(original), &primary(), &backends(), None).ok(),
        Some(None)
    );
}

#[test]
fn a_users_own_mirror_elsewhere_is_never_replaced() {
    let mut value = vs_json(100, 0);
    value["spec"]["http"][1]["mirror"] = json!({"host": "shadow"});
    assert_eq!(mirror_percent(&vs(value.clone()), &primary(), &backends()), None);
    let refused = mirror_patch(&vs(value.clone()), &primary(), &backends(), Some(100));
    assert!(matches!(refused, Err(RoutingError::Unsupported { .. })));
    let untouched = mirror_patch(&vs(value), &primary(), &backends(), None).expect("primary has both");
    assert_eq!(untouched, None, "nothing of Siskin's to remove");
}

#[test]
fn a_cookie_is_matched_by_a_regex_on_the_cookie_header_and_read_back() {
    let wanted = vec![RequestMatch {
        headers: beta_testers().remove(0).headers,
        cookie: Some(canary_cookie()),
    }];
    let mut value = vs_json(100, 0);
    value["metadata"]["resourceVersion"] = json!("41");
    let patch = match_patch_json(value.clone(), Some(&wanted)).expect("a write");
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("patch");
    json_patch::patch(&mut value, &patch).expect("applies");
    assert_eq!(
        value["spec"]["http"][0]["match"],
        json!([{"headers": {"x-beta": {"exact": "true"},
                            "cookie": {"regex": r"^(.*;\s*)?canary=always(;.*)?$"}}}])
    );
    assert_eq!(match_patch_json(value, Some(&wanted)), None, "in place: no write");
}
