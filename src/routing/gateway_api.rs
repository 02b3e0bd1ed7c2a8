//! Gateway API `HTTPRoute`: weights on the backendRefs that name the stable
//! and canary Services, in every rule that sends traffic to both. Rules,
//! matches and filters are the user's and stay untouched; for an A/B test
//! Siskin adds one rule of its own, found again by its name, and removes it.

use futures::future::BoxFuture;
use gateway_api::httproutes::{HttpRoute, HttpRouteRulesBackendRefs, HttpRouteRulesMatchesHeadersType};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, TestOperation};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::{
    Backends, RouteObject, RouteState, RoutingError, TrafficRouter, TrafficSplit, agreed_split, guarded_weight_ops,
    pointer, read_match,
};
use crate::api::{COOKIE_HEADER, RequestMatch};

/// Gateway API's default weight when a backendRef has none.
const DEFAULT_WEIGHT: i32 = 1;

/// Shifts traffic on one HTTPRoute in the Rollout's namespace.
pub struct HttpRouteRouter {
    route: RouteObject<HttpRoute>,
    backends: Backends,
    /// The name of the rule Siskin owns for request matches.
    match_rule: String,
}

impl HttpRouteRouter {
    pub fn new(client: Client, namespace: &str, name: &str, backends: Backends, match_rule: &str) -> Self {
        HttpRouteRouter {
            route: RouteObject::new(client, namespace, name),
            backends,
            match_rule: match_rule.to_string(),
        }
    }
}

impl TrafficRouter for HttpRouteRouter {
    fn describe(&self) -> String {
        self.route.described.clone()
    }

    fn observe(&self) -> BoxFuture<'_, Result<RouteState, RoutingError>> {
        Box::pin(
            self.route
                .observe(move |route| match route_state(route, &self.backends) {
                    RouteState::Present { split, accepted, .. } => RouteState::Present {
                        split,
                        accepted,
                        matches: match_rule_matches(route, &self.match_rule),
                        mirror: None,
                    },
                    other => other,
                }),
        )
    }

    fn set_matches<'a>(&'a self, matches: Option<&'a [RequestMatch]>) -> BoxFuture<'a, Result<(), RoutingError>> {
        Box::pin(
            self.route
                .update(move |route| match_patch(route, &self.backends, &self.match_rule, matches)),
        )
    }

    fn set_weights(&self, split: TrafficSplit) -> BoxFuture<'_, Result<(), RoutingError>> {
        Box::pin(
            self.route
                .update(move |route| weight_patch(route, &self.backends, split).map(Some)),
        )
    }
}

/// A backendRef that names `service` as a core Service in the route's own
/// namespace (a cross-namespace ref to a same-named Service is not ours).
fn names_service(backend: &HttpRouteRulesBackendRefs, service: &str, namespace: &str) -> bool {
    let core_group = backend.group.as_deref().is_none_or(str::is_empty);
    let service_kind = backend.kind.as_deref().is_none_or(|k| k == "Service");
    let same_namespace = backend.namespace.as_deref().is_none_or(|n| n == namespace);
    backend.name == service && core_group && service_kind && same_namespace
}

/// For each rule sending traffic to both Services: its index, and the
/// indices of its backendRefs naming either one.
fn managed_rules(route: &HttpRoute, backends: &Backends) -> Vec<(usize, Vec<usize>)> {
    let namespace = route.namespace().unwrap_or_default();
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    rules
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| {
            let refs = rule.backend_refs.as_deref().unwrap_or_default();
            let ours: Vec<usize> = (0..refs.len())
                .filter(|&j| {
                    names_service(&refs[j], &backends.stable, &namespace)
                        || names_service(&refs[j], &backends.canary, &namespace)
                })
                .collect();
            let has = |service: &str| ours.iter().any(|&j| refs[j].name == service);
            (has(&backends.stable) && has(&backends.canary)).then_some((i, ours))
        })
        .collect()
}

fn missing_backends(route: &HttpRoute, backends: &Backends) -> RoutingError {
    RoutingError::MissingBackend {
        route: format!("HTTPRoute {}", route.name_any()),
        message: format!(
            "no rule sends traffic to both {} and {}",
            backends.stable, backends.canary
        ),
    }
}

/// The exact JSON Patch that sets `split` on `route`: for every backendRef
/// naming the stable or canary Service, in every rule that names both, a
/// `test` of its name (and current weight) and then the new weight.
pub fn weight_patch(route: &HttpRoute, backends: &Backends, split: TrafficSplit) -> Result<Patch, RoutingError> {
    let managed = managed_rules(route, backends);
    if managed.is_empty() {
        return Err(missing_backends(route, backends));
    }
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    let mut ops = Vec::new();
    for (i, refs) in managed {
        let backend_refs = rules[i].backend_refs.as_deref().unwrap_or_default();
        for j in refs {
            let backend = &backend_refs[j];
            let Some(weight) = backends.weight_for(&backend.name, split) else {
                continue;
            };
            let prefix = ["spec", "rules", &i.to_string(), "backendRefs", &j.to_string()].map(String::from);
            ops.extend(guarded_weight_ops(
                &prefix,
                ("name", &backend.name),
                backend.weight,
                weight,
            ));
        }
    }
    Ok(Patch(ops))
}

/// What the engine needs to know about the route.
pub fn route_state(route: &HttpRoute, backends: &Backends) -> RouteState {
    let managed = managed_rules(route, backends);
    if managed.is_empty() {
        let message = missing_backends(route, backends).detail();
        return RouteState::MissingBackends { message };
    }
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    let splits = managed.iter().map(|(i, refs)| {
        let backend_refs = rules[*i].backend_refs.as_deref().unwrap_or_default();
        backends.split_of(refs.iter().map(|j| {
            let backend = &backend_refs[*j];
            (backend.name.as_str(), backend.weight.unwrap_or(DEFAULT_WEIGHT))
        }))
    });
    RouteState::Present {
        split: agreed_split(splits),
        accepted: accepted(route),
        matches: None,
        mirror: None,
    }
}

/// The indices of the rules carrying Siskin's match rule name.
fn match_rule_indices(route: &HttpRoute, rule_name: &str) -> Vec<usize> {
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    (0..rules.len())
        .filter(|&i| rules[i].name.as_deref() == Some(rule_name))
        .collect()
}

/// The request matches of Siskin's match rule, if the route has it. Only
/// the headers are read back: they are all Siskin ever writes there (a
/// cookie as a regular expression on the Cookie header).
pub fn match_rule_matches(route: &HttpRoute, rule_name: &str) -> Option<Vec<RequestMatch>> {
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    let rule = rules.iter().find(|r| r.name.as_deref() == Some(rule_name))?;
    let matches = rule.matches.as_deref().unwrap_or_default();
    Some(
        matches
            .iter()
            .map(|m| {
                read_match(m.headers.iter().flatten().map(|h| {
                    let regex = matches!(h.r#type, Some(HttpRouteRulesMatchesHeadersType::RegularExpression));
                    (h.name.as_str(), h.value.as_str(), regex.then_some(h.value.as_str()))
                }))
            })
            .collect(),
    )
}

/// The exact JSON Patch that puts Siskin's match rule on `route` with
/// `wanted` (replacing an older one), or takes it off (`None`); `None`
/// when there is nothing to change. Removals `test` the rule's name at its
/// index first; an addition `test`s the resourceVersion read, because the
/// rule it appends copies the canary backendRef of the user's rule. The
/// user's rules are never rewritten.
pub fn match_patch(
    route: &HttpRoute,
    backends: &Backends,
    rule_name: &str,
    wanted: Option<&[RequestMatch]>,
) -> Result<Option<Patch>, RoutingError> {
    if match_rule_matches(route, rule_name).as_deref() == wanted {
        return Ok(None);
    }
    let mut ops = Vec::new();
    if let Some(wanted) = wanted {
        let resource_version = route.metadata.resource_version.clone().unwrap_or_default();
        ops.push(PatchOperation::Test(TestOperation {
            path: pointer(&["metadata", "resourceVersion"]),
            value: resource_version.into(),
        }));
        // Highest index first, so earlier removals don't shift later ones.
        for i in match_rule_indices(route, rule_name).into_iter().rev() {
            ops.extend(remove_rule_ops(i, rule_name));
        }
        ops.push(PatchOperation::Add(AddOperation {
            path: pointer(&["spec", "rules", "-"]),
            value: match_rule(route, backends, rule_name, wanted)?,
        }));
    } else {
        for i in match_rule_indices(route, rule_name).into_iter().rev() {
            ops.extend(remove_rule_ops(i, rule_name));
        }
    }
    Ok(Some(Patch(ops)))
}

fn remove_rule_ops(index: usize, rule_name: &str) -> [PatchOperation; 2] {
    let index = index.to_string();
    [
        PatchOperation::Test(TestOperation {
            path: pointer(&["spec", "rules", &index, "name"]),
            value: rule_name.into(),
        }),
        PatchOperation::Remove(RemoveOperation {
            path: pointer(&["spec", "rules", &index]),
        }),
    ]
}

/// Siskin's match rule: every match's headers, exact, and its cookie, to the canary
/// Service on the port the user's weighted rule uses for it. Without a path
/// a match covers every path (`PathPrefix /`); its headers then make it
/// more specific than a user rule without headers, so it takes precedence.
fn match_rule(
    route: &HttpRoute,
    backends: &Backends,
    rule_name: &str,
    wanted: &[RequestMatch],
) -> Result<serde_json::Value, RoutingError> {
    let managed = managed_rules(route, backends);
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    let canary_ref = managed
        .iter()
        .flat_map(|(i, refs)| refs.iter().map(move |j| (*i, *j)))
        .filter_map(|(i, j)| rules[i].backend_refs.as_deref()?.get(j))
        .find(|b| b.name == backends.canary)
        .ok_or_else(|| missing_backends(route, backends))?;
    let matches: Vec<serde_json::Value> = wanted
        .iter()
        .map(|m| {
            let exact = m
                .headers
                .iter()
                .map(|h| json!({"type": "Exact", "name": h.name, "value": h.value}));
            let cookie = m
                .cookie
                .iter()
                .map(|c| json!({"type": "RegularExpression", "name": COOKIE_HEADER, "value": c.header_pattern()}));
            json!({"headers": exact.chain(cookie).collect::<Vec<_>>()})
        })
        .collect();
    let mut backend = json!({"name": backends.canary, "weight": 1});
    if let Some(port) = canary_ref.port {
        backend["port"] = port.into();
    }
    Ok(json!({"name": rule_name, "matches": matches, "backendRefs": [backend]}))
}

/// Whether every parent (Gateway) accepted the route's current generation:
/// until then the weights on the object are not the weights users get.
pub fn accepted(route: &HttpRoute) -> bool {
    let Some(generation) = route.metadata.generation else {
        return false;
    };
    let parents = route.status.as_ref().map(|s| s.parents.as_slice()).unwrap_or_default();
    !parents.is_empty()
        && parents.iter().all(|parent| {
            parent
                .conditions
                .iter()
                .any(|c| c.type_ == "Accepted" && c.status == "True" && c.observed_generation == Some(generation))
        })
}

#[cfg(test)]
mod tests;
