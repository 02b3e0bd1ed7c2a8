//! The one place that knows every traffic router: which router serves a
//! Rollout's route, and which API kind to watch for it.

use kube::core::GroupVersionKind;
use kube::{Client, Resource};

use super::{Backends, TrafficRouter, gateway_api, istio, istio_types, match_rule_name};
use crate::api::{RolloutSpec, RouteKind, RouteRef};

/// The router a Rollout's spec names, or `None` for a replica-ratio canary.
pub fn router_for(client: Client, namespace: &str, spec: &RolloutSpec) -> Option<Box<dyn TrafficRouter>> {
    let route = spec.traffic_routing()?.route()?;
    let backends = Backends::of(&spec.service);
    let rule = match_rule_name(&spec.service);
    Some(match route {
        RouteRef::HttpRoute(g) => Box::new(gateway_api::HttpRouteRouter::new(
            client,
            namespace,
            &g.http_route.name,
            backends,
            &rule,
        )),
        RouteRef::VirtualService(i) => Box::new(istio::VirtualServiceRouter::new(
            client,
            namespace,
            &i.virtual_service,
            backends,
            &rule,
        )),
    })
}

/// The API kind of a route, for watching it.
pub fn watched_kind(kind: RouteKind) -> GroupVersionKind {
    fn gvk<K: Resource<DynamicType = ()>>() -> GroupVersionKind {
        GroupVersionKind::gvk(&K::group(&()), &K::version(&()), &K::kind(&()))
    }
    match kind {
        RouteKind::HttpRoute => gvk::<::gateway_api::httproutes::HttpRoute>(),
        RouteKind::VirtualService => gvk::<istio_types::VirtualService>(),
    }
}
