//! The one place that knows every traffic router.

use kube::Client;

use super::{Backends, TrafficRouter, gateway_api, istio, match_rule_name};
use crate::api::RolloutSpec;

/// The router a Rollout's spec names, or `None` for a replica-ratio canary.
pub fn router_for(client: Client, namespace: &str, spec: &RolloutSpec) -> Option<Box<dyn TrafficRouter>> {
    let routing = spec.traffic_routing()?;
    let backends = Backends::of(&spec.service);
    if let Some(g) = &routing.gateway_api {
        let rule = match_rule_name(&spec.service);
        let router = gateway_api::HttpRouteRouter::new(client, namespace, &g.http_route.name, backends, &rule);
        return Some(Box::new(router));
    }
    if let Some(i) = &routing.istio {
        let rule = match_rule_name(&spec.service);
        let router = istio::VirtualServiceRouter::new(client, namespace, &i.virtual_service, backends, &rule);
        return Some(Box::new(router));
    }
    None
}
