//! Gateway API `HTTPRoute`: weights on the backendRefs that name the stable
//! and canary Services, in every rule that sends traffic to both. Rules,
//! matches and filters are the user's and stay untouched.

use futures::future::BoxFuture;
use gateway_api::httproutes::{HttpRoute, HttpRouteRulesBackendRefs};
use json_patch::Patch;
use kube::api::{Api, PatchParams};
use kube::{Client, ResourceExt};

use super::{
    Backends, FIELD_MANAGER, RouteState, RoutingError, TrafficRouter, TrafficSplit, agreed_split, guarded_weight_ops,
};

/// Gateway API's default weight when a backendRef has none.
const DEFAULT_WEIGHT: i32 = 1;

/// Shifts traffic on one HTTPRoute in the Rollout's namespace.
pub struct HttpRouteRouter {
    api: Api<HttpRoute>,
    namespace: String,
    name: String,
    backends: Backends,
}

impl HttpRouteRouter {
    pub fn new(client: Client, namespace: &str, name: &str, backends: Backends) -> Self {
        HttpRouteRouter {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            backends,
        }
    }
}

impl TrafficRouter for HttpRouteRouter {
    fn describe(&self) -> String {
        format!("HTTPRoute {}/{}", self.namespace, self.name)
    }

    fn observe(&self) -> BoxFuture<'_, Result<RouteState, RoutingError>> {
        Box::pin(async move {
            let found = self.api.get_opt(&self.name).await;
            match found.map_err(|e| RoutingError::from_kube(&self.describe(), e))? {
                None => Ok(RouteState::NotFound),
                Some(route) => Ok(route_state(&route, &self.backends)),
            }
        })
    }

    fn set_weights(&self, split: TrafficSplit) -> BoxFuture<'_, Result<(), RoutingError>> {
        Box::pin(async move {
            let describe = self.describe();
            let route = self
                .api
                .get_opt(&self.name)
                .await
                .map_err(|e| RoutingError::from_kube(&describe, e))?
                .ok_or_else(|| RoutingError::NotFound {
                    route: describe.clone(),
                })?;
            let patch = weight_patch(&route, &self.backends, split)?;
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PatchParams::default()
            };
            self.api
                .patch(&self.name, &params, &kube::api::Patch::Json::<()>(patch))
                .await
                .map_err(|e| RoutingError::from_kube(&describe, e))?;
            Ok(())
        })
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
        let mut split = TrafficSplit { stable: 0, canary: 0 };
        for backend in refs.iter().map(|j| &backend_refs[*j]) {
            let weight = backend.weight.unwrap_or(DEFAULT_WEIGHT);
            if backend.name == backends.stable {
                split.stable += weight;
            } else {
                split.canary += weight;
            }
        }
        split
    });
    RouteState::Present {
        split: agreed_split(splits),
        accepted: accepted(route),
    }
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
