//! Routes are watched, by metadata only, so a Rollout hears at once when its
//! route appears, is fixed, changes under it, or is accepted by the data
//! plane, instead of looking again on a timer. Only route kinds the cluster
//! serves are watched: a cluster without Istio has no VirtualServices.

use gateway_api::httproutes::HttpRoute;
use kube::core::{GroupVersionKind, PartialObjectMeta};
use kube::discovery::oneshot::pinned_kind;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use crate::api::{Rollout, RouteRef};
use crate::routing::istio_types::VirtualService;

/// The route kinds a Rollout can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    HttpRoute,
    VirtualService,
}

impl RouteKind {
    fn of(route: &RouteRef<'_>) -> RouteKind {
        match route {
            RouteRef::HttpRoute { .. } => RouteKind::HttpRoute,
            RouteRef::VirtualService { .. } => RouteKind::VirtualService,
        }
    }

    fn gvk(self) -> GroupVersionKind {
        match self {
            RouteKind::HttpRoute => gvk::<HttpRoute>(),
            RouteKind::VirtualService => gvk::<VirtualService>(),
        }
    }

    /// Whether the API server serves this kind now.
    pub async fn is_served(self, client: &Client) -> bool {
        pinned_kind(client, &self.gvk()).await.is_ok()
    }
}

fn gvk<K: Resource<DynamicType = ()>>() -> GroupVersionKind {
    GroupVersionKind::gvk(&K::group(&()), &K::version(&()), &K::kind(&()))
}

/// The name of the route of `kind` that `rollout` shifts traffic on.
fn route_of(rollout: &Rollout, kind: RouteKind) -> Option<&str> {
    let route = rollout.spec.traffic_routing()?.route()?;
    (RouteKind::of(&route) == kind).then(|| route.name())
}

/// The Rollouts in the route's namespace that name it.
pub fn rollouts_routed_by<K>(
    store: &Store<Rollout>,
    kind: RouteKind,
    route: &PartialObjectMeta<K>,
) -> Vec<ObjectRef<Rollout>> {
    let (ns, name) = (
        route.metadata.namespace.clone(),
        route.metadata.name.clone().unwrap_or_default(),
    );
    store
        .state()
        .iter()
        .filter(|r| r.namespace() == ns && route_of(r, kind) == Some(name.as_str()))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    fn rollout(ns: &str, name: &str, routing: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "siskin.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "replicas": 1,
                "service": {"name": name, "port": 80},
                "template": {"spec": {"containers": [{"name": "app", "image": "app"}]}},
                "strategy": {"canary": {"trafficRouting": routing, "steps": [{"weight": 10}]}},
            },
        }))
        .expect("a valid Rollout")
    }

    fn route<K>(ns: &str, name: &str) -> PartialObjectMeta<K> {
        PartialObjectMeta {
            types: None,
            metadata: kube::api::ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            _phantom: std::marker::PhantomData,
        }
    }

    #[test]
    fn a_route_change_wakes_exactly_the_rollouts_that_name_it() {
        let (reader, mut writer) = store::<Rollout>();
        let on_gateway = |route: &str| json!({"gatewayAPI": {"httpRoute": {"name": route}}});
        writer.apply_watcher_event(&Event::Init);
        for r in [
            rollout("shop", "cart", on_gateway("web")),
            rollout("shop", "search", on_gateway("web")),
            rollout("shop", "pay", on_gateway("pay")),
            rollout("blog", "posts", on_gateway("web")),
            rollout("shop", "mesh", json!({"istio": {"virtualService": {"name": "web"}}})),
        ] {
            writer.apply_watcher_event(&Event::InitApply(r));
        }
        writer.apply_watcher_event(&Event::InitDone);
        let woken = |kind, ns, name| {
            let mut names: Vec<String> = match kind {
                RouteKind::HttpRoute => rollouts_routed_by(&reader, kind, &route::<HttpRoute>(ns, name)),
                RouteKind::VirtualService => rollouts_routed_by(&reader, kind, &route::<VirtualService>(ns, name)),
            }
            .into_iter()
            .map(|r| r.name)
            .collect();
            names.sort();
            names
        };
        assert_eq!(woken(RouteKind::HttpRoute, "shop", "web"), ["cart", "search"]);
        assert_eq!(woken(RouteKind::VirtualService, "shop", "web"), ["mesh"]);
        assert_eq!(woken(RouteKind::HttpRoute, "blog", "web"), ["posts"]);
        assert!(woken(RouteKind::HttpRoute, "shop", "other").is_empty());
    }
}
