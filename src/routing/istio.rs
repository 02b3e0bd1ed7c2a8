//! Istio `VirtualService`: weights on the destinations of named HTTP routes
//! that send traffic to both the stable and canary Services (host-level
//! split). Everything else in the VirtualService is the user's.

use futures::future::BoxFuture;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, TestOperation};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::istio_types::{VirtualService, VirtualServiceHttp, VirtualServiceStatusValidationMessagesLevel};
use super::{
    Backends, RouteObject, RouteState, RoutingError, TrafficRouter, TrafficSplit, agreed_split, guarded_weight_ops,
    pointer, read_match,
};
use crate::api::{COOKIE_HEADER, RequestMatch, VirtualServiceRef};

/// Shifts traffic on one VirtualService in the Rollout's namespace.
pub struct VirtualServiceRouter {
    route: RouteObject<VirtualService>,
    routes: Vec<String>,
    backends: Backends,
    /// The name of Siskin's own HTTP route for an A/B test's matches.
    match_route: String,
}

impl VirtualServiceRouter {
    pub fn new(
        client: Client,
        namespace: &str,
        reference: &VirtualServiceRef,
        backends: Backends,
        match_route: &str,
    ) -> Self {
        VirtualServiceRouter {
            route: RouteObject::new(client, namespace, &reference.name),
            routes: reference.routes.clone(),
            backends,
            match_route: match_route.to_string(),
        }
    }
}

impl TrafficRouter for VirtualServiceRouter {
    fn describe(&self) -> String {
        self.route.described.clone()
    }

    fn observe(&self) -> BoxFuture<'_, Result<RouteState, RoutingError>> {
        Box::pin(
            self.route
                .observe(move |vs| route_state(vs, &self.routes, &self.backends, &self.match_route)),
        )
    }

    fn set_weights(&self, split: TrafficSplit) -> BoxFuture<'_, Result<(), RoutingError>> {
        Box::pin(
            self.route
                .update(move |vs| weight_patch(vs, &self.routes, &self.backends, split).map(Some)),
        )
    }

    fn set_mirror(&self, percent: Option<i32>) -> BoxFuture<'_, Result<(), RoutingError>> {
        Box::pin(
            self.route
                .update(move |vs| mirror_patch(vs, &self.routes, &self.backends, percent)),
        )
    }

    fn set_matches<'a>(&'a self, matches: Option<&'a [RequestMatch]>) -> BoxFuture<'a, Result<(), RoutingError>> {
        Box::pin(
            self.route
                .update(move |vs| match_patch(vs, &self.routes, &self.backends, &self.match_route, matches)),
        )
    }
}

/// Whether a destination host names `service` in `namespace`: Istio accepts
/// the short name and any of the fully qualified forms.
fn names_service(host: &str, service: &str, namespace: &str) -> bool {
    let qualified = format!("{service}.{namespace}");
    host == service
        || host == qualified
        || host == format!("{qualified}.svc")
        || host.starts_with(&format!("{qualified}.svc."))
}

/// One HTTP route to weight: its index and, for each destination naming one
/// of our Services, the destination index and the Service it names.
struct ManagedRoute {
    index: usize,
    destinations: Vec<(usize, String)>,
}

fn managed_routes(
    vs: &VirtualService,
    names: &[String],
    backends: &Backends,
) -> Result<Vec<ManagedRoute>, RoutingError> {
    let namespace = vs.namespace().unwrap_or_default();
    let http = vs.spec.http.as_deref().unwrap_or_default();
    let route_name = || format!("VirtualService {}", vs.name_any());
    let candidates: Vec<usize> = if names.is_empty() {
        (0..http.len()).collect()
    } else {
        let mut indices = Vec::with_capacity(names.len());
        for name in names {
            let found = http.iter().position(|h| h.name.as_deref() == Some(name));
            indices.push(found.ok_or_else(|| RoutingError::UnknownRouteName {
                route: route_name(),
                name: name.clone(),
            })?);
        }
        indices
    };
    let mut managed = Vec::new();
    for index in candidates {
        match ours(&http[index], backends, &namespace) {
            Some(destinations) => managed.push(ManagedRoute { index, destinations }),
            // A route the user named must carry both; unnamed ones may not.
            None if !names.is_empty() => return Err(missing(route_name(), backends)),
            None => {}
        }
    }
    if managed.is_empty() {
        return Err(missing(route_name(), backends));
    }
    Ok(managed)
}

/// The destinations of one HTTP route that name our Services, if it names
/// both.
fn ours(http: &VirtualServiceHttp, backends: &Backends, namespace: &str) -> Option<Vec<(usize, String)>> {
    let destinations: Vec<(usize, String)> = http
        .route
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(j, r)| {
            [&backends.stable, &backends.canary]
                .into_iter()
                .find(|svc| names_service(&r.destination.host, svc, namespace))
                .map(|svc| (j, svc.clone()))
        })
        .collect();
    let has = |svc: &String| destinations.iter().any(|(_, s)| s == svc);
    (has(&backends.stable) && has(&backends.canary)).then_some(destinations)
}

fn missing(route: String, backends: &Backends) -> RoutingError {
    RoutingError::MissingBackend {
        route,
        message: format!(
            "no HTTP route sends traffic to both {} and {}",
            backends.stable, backends.canary
        ),
    }
}

/// The exact JSON Patch that sets `split`: for each destination of our
/// Services in each managed route, a `test` of its host (and current
/// weight), then the new weight.
pub fn weight_patch(
    vs: &VirtualService,
    names: &[String],
    backends: &Backends,
    split: TrafficSplit,
) -> Result<Patch, RoutingError> {
    let http = vs.spec.http.as_deref().unwrap_or_default();
    let mut ops = Vec::new();
    for managed in managed_routes(vs, names, backends)? {
        let routes = http[managed.index].route.as_deref().unwrap_or_default();
        for (j, service) in managed.destinations {
            let Some(weight) = backends.weight_for(&service, split) else {
                continue;
            };
            let destination = &routes[j];
            let prefix = ["spec", "http", &managed.index.to_string(), "route", &j.to_string()].map(String::from);
            ops.extend(guarded_weight_ops(
                &prefix,
                ("destination/host", &destination.destination.host),
                destination.weight,
                weight,
            ));
        }
    }
    Ok(Patch(ops))
}

/// What the engine needs to know about the VirtualService.
pub fn route_state(vs: &VirtualService, names: &[String], backends: &Backends, match_route: &str) -> RouteState {
    let managed = match managed_routes(vs, names, backends) {
        Ok(managed) => managed,
        Err(e) => return RouteState::MissingBackends { message: e.detail() },
    };
    let http = vs.spec.http.as_deref().unwrap_or_default();
    let splits = managed.iter().map(|m| {
        let routes = http[m.index].route.as_deref().unwrap_or_default();
        // Istio treats a missing weight as 0 when several destinations are
        // listed.
        backends.split_of(
            m.destinations
                .iter()
                .map(|(j, service)| (service.as_str(), routes[*j].weight.unwrap_or(0))),
        )
    });
    RouteState::Present {
        split: agreed_split(splits),
        accepted: accepted(vs),
        matches: match_route_matches(vs, match_route),
        mirror: mirror_percent(vs, names, backends),
    }
}

/// The share mirrored to the canary by the weighted routes: the first
/// route's `mirrorPercentage` whose mirror names the canary Service (100
/// when it has none, as in Istio).
pub fn mirror_percent(vs: &VirtualService, names: &[String], backends: &Backends) -> Option<i32> {
    let namespace = vs.namespace().unwrap_or_default();
    let http = vs.spec.http.as_deref().unwrap_or_default();
    let managed = managed_routes(vs, names, backends).ok()?;
    managed.iter().find_map(|m| {
        let route = &http[m.index];
        let mirror = route.mirror.as_ref()?;
        if !names_service(&mirror.host, &backends.canary, &namespace) {
            return None;
        }
        let percent = route.mirror_percentage.as_ref().and_then(|p| p.value).unwrap_or(100.0);
        // Percentages Siskin writes are whole; others round to the nearest.
        Some(percent.round().clamp(0.0, 100.0) as i32)
    })
}

/// The exact JSON Patch that mirrors `percent` of each weighted route's
/// traffic to the canary destination as the route names it (host, port),
/// or that removes Siskin's mirror (`None`); `None` when already so. A
/// mirror of the user's to another host is never touched.
pub fn mirror_patch(
    vs: &VirtualService,
    names: &[String],
    backends: &Backends,
    percent: Option<i32>,
) -> Result<Option<Patch>, RoutingError> {
    if mirror_percent(vs, names, backends) == percent {
        return Ok(None);
    }
    let namespace = vs.namespace().unwrap_or_default();
    let http = vs.spec.http.as_deref().unwrap_or_default();
    let mut ops = vec![PatchOperation::Test(TestOperation {
        path: pointer(&["metadata", "resourceVersion"]),
        value: vs.metadata.resource_version.clone().unwrap_or_default().into(),
    })];
    for managed in managed_routes(vs, names, backends)? {
        let route = &http[managed.index];
        let index = managed.index.to_string();
        let ours = route
            .mirror
            .as_ref()
            .is_some_and(|m| names_service(&m.host, &backends.canary, &namespace));
        match percent {
            Some(percent) => {
                if route.mirror.is_some() && !ours {
                    return Err(RoutingError::Unsupported {
                        route: format!("VirtualService {}", vs.name_any()),
                        what: format!("mirroring on HTTP route {index}, which already mirrors elsewhere;"),
                    });
                }
                let canary = managed
                    .destinations
                    .iter()
                    .find(|(_, svc)| *svc == backends.canary)
                    .and_then(|(j, _)| route.route.as_deref()?.get(*j))
                    .map(|r| &r.destination)
                    .ok_or_else(|| missing(format!("VirtualService {}", vs.name_any()), backends))?;
                let mut mirror = json!({"host": canary.host});
                if let Some(port) = &canary.port {
                    mirror["port"] = serde_json::to_value(port).unwrap_or_default();
                }
                ops.push(PatchOperation::Add(AddOperation {
                    path: pointer(&["spec", "http", &index, "mirror"]),
                    value: mirror,
                }));
                ops.push(PatchOperation::Add(AddOperation {
                    path: pointer(&["spec", "http", &index, "mirrorPercentage"]),
                    value: json!({"value": f64::from(percent)}),
                }));
            }
            None if ours => {
                ops.push(PatchOperation::Remove(RemoveOperation {
                    path: pointer(&["spec", "http", &index, "mirror"]),
                }));
                if route.mirror_percentage.is_some() {
                    ops.push(PatchOperation::Remove(RemoveOperation {
                        path: pointer(&["spec", "http", &index, "mirrorPercentage"]),
                    }));
                }
            }
            None => {}
        }
    }
    Ok(Some(Patch(ops)))
}

/// The indices of Siskin's match routes (normally none or one).
fn match_route_indices(vs: &VirtualService, match_route: &str) -> Vec<usize> {
    let http = vs.spec.http.as_deref().unwrap_or_default();
    (0..http.len())
        .filter(|&i| http[i].name.as_deref() == Some(match_route))
        .collect()
}

/// The request matches of Siskin's match route, read back: exact header
/// values and a cookie's regular expression, as Siskin writes them.
pub fn match_route_matches(vs: &VirtualService, match_route: &str) -> Option<Vec<RequestMatch>> {
    let http = vs.spec.http.as_deref().unwrap_or_default();
    let index = *match_route_indices(vs, match_route).first()?;
    let matches = http[index].r#match.as_deref().unwrap_or_default();
    Some(
        matches
            .iter()
            .map(|m| {
                read_match(m.headers.iter().flatten().map(|(name, value)| {
                    let exact = value.exact.as_deref().unwrap_or_default();
                    (name.as_str(), exact, value.regex.as_deref())
                }))
            })
            .collect(),
    )
}

/// The exact JSON Patch that puts Siskin's match route first in `http`
/// (Istio takes the first route that matches, so it precedes the user's),
/// replacing an older one, or that removes it (`wanted` is `None`); `None`
/// when the VirtualService already is as wanted.
pub fn match_patch(
    vs: &VirtualService,
    names: &[String],
    backends: &Backends,
    match_route: &str,
    wanted: Option<&[RequestMatch]>,
) -> Result<Option<Patch>, RoutingError> {
    if RequestMatch::same(match_route_matches(vs, match_route).as_deref(), wanted) {
        return Ok(None);
    }
    let mut ops = Vec::new();
    // Highest index first, so earlier removals don't shift later ones.
    for i in match_route_indices(vs, match_route).into_iter().rev() {
        let index = i.to_string();
        ops.push(PatchOperation::Test(TestOperation {
            path: pointer(&["spec", "http", &index, "name"]),
            value: match_route.into(),
        }));
        ops.push(PatchOperation::Remove(RemoveOperation {
            path: pointer(&["spec", "http", &index]),
        }));
    }
    if let Some(wanted) = wanted {
        ops.insert(
            0,
            PatchOperation::Test(TestOperation {
                path: pointer(&["metadata", "resourceVersion"]),
                value: vs.metadata.resource_version.clone().unwrap_or_default().into(),
            }),
        );
        ops.push(PatchOperation::Add(AddOperation {
            path: pointer(&["spec", "http", "0"]),
            value: match_route_value(vs, names, backends, match_route, wanted)?,
        }));
    }
    Ok(Some(Patch(ops)))
}

/// Siskin's match route: every match's headers, exact, and its cookie, to the canary
/// destination exactly as the user's weighted route names it (host form,
/// port, subset).
fn match_route_value(
    vs: &VirtualService,
    names: &[String],
    backends: &Backends,
    match_route: &str,
    wanted: &[RequestMatch],
) -> Result<serde_json::Value, RoutingError> {
    let http = vs.spec.http.as_deref().unwrap_or_default();
    let canary = managed_routes(vs, names, backends)?
        .into_iter()
        .flat_map(|m| m.destinations.into_iter().map(move |(j, svc)| (m.index, j, svc)))
        .find(|(_, _, svc)| *svc == backends.canary)
        .and_then(|(i, j, _)| http[i].route.as_deref()?.get(j).map(|r| r.destination.clone()))
        .ok_or_else(|| missing(format!("VirtualService {}", vs.name_any()), backends))?;
    let matches: Vec<serde_json::Value> = wanted
        .iter()
        .map(|m| {
            let exact = m.headers.iter().map(|h| (h.name.clone(), json!({"exact": h.value})));
            let cookie = m
                .cookie
                .iter()
                .map(|c| (COOKIE_HEADER.to_string(), json!({"regex": c.header_pattern()})));
            let headers: serde_json::Map<String, serde_json::Value> = exact.chain(cookie).collect();
            json!({"headers": headers})
        })
        .collect();
    Ok(json!({
        "name": match_route,
        "match": matches,
        "route": [{"destination": canary}],
    }))
}

/// Istio reports status only when its status feature is on. Without a
/// status there is nothing to wait for (the object was validated at
/// admission); with one, the current generation must be reconciled and
/// free of validation errors.
pub fn accepted(vs: &VirtualService) -> bool {
    let Some(status) = &vs.status else {
        return true;
    };
    let observed = status.observed_generation.as_ref().and_then(|g| match g {
        IntOrString::Int(i) => Some(i64::from(*i)),
        IntOrString::String(s) => s.parse().ok(),
    });
    let current = match (observed, vs.metadata.generation) {
        (Some(observed), Some(generation)) => observed == generation,
        (None, _) => true,
        (Some(_), None) => false,
    };
    let errors = status
        .validation_messages
        .iter()
        .flatten()
        .any(|m| m.level == Some(VirtualServiceStatusValidationMessagesLevel::Error));
    let unreconciled = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.r#type.as_deref() == Some("Reconciled") && c.status.as_deref() != Some("True"));
    current && !errors && !unreconciled
}

#[cfg(test)]
mod tests;
