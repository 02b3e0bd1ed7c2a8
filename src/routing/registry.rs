//! The one place that knows every traffic router.

use kube::Client;

use super::{Backends, TrafficRouter, gateway_api, istio, match_rule_name};
use crate::api::{RolloutSpec, RouteRef};

/// The router a Rollout's spec names, or `None` for a replica-ratio canary:
/// the one registration of every router.
pub fn router_for(client: Client, namespace: &str, spec: &RolloutSpec) -> Option<Box<dyn TrafficRouter>> {
    let route = spec.traffic_routing()?.route()?;
    let backends = Backends::of(&spec.service);
    let rule = match_rule_name(&spec.service);
    Some(match route {
        RouteRef::HttpRoute { name } => Box::new(gateway_api::HttpRouteRouter::new(
            client, namespace, name, backends, &rule,
        )),
        RouteRef::VirtualService { name, routes } => Box::new(istio::VirtualServiceRouter::new(
            client, namespace, name, routes, backends, &rule,
        )),
    })
}
