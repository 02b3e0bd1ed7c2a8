//! The thin Kubernetes shell around the pure step engine: watch Rollouts,
//! observe the world into plain data, ask [`crate::plan::plan`], apply its
//! actions, write status, publish Events. Leader election gates all of it.

mod act;
mod analysis;
mod error;
mod hooks;
pub mod leader;
pub mod metrics;
mod observe;
mod reconcile;
mod routes;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};

pub use error::Error;
pub use metrics::Metrics;

use gateway_api::httproutes::HttpRoute;

use crate::api::{ROLLOUT_LABEL, Rollout};
use crate::routing::istio_types::VirtualService;
use routes::RouteKind;

/// The field manager of every object and status Siskin writes.
pub const FIELD_MANAGER: &str = "siskin";
/// The finalizer that lets a deleted Rollout hand traffic back first.
pub const FINALIZER: &str = "siskin.io/cleanup";

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Per Rollout (`namespace/name`), the resourceVersion our last status
    /// write replaced. A reconcile that finds the cache still at it would
    /// plan from a status we already moved past; it waits for the watch.
    pub superseded: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The client for webhook calls.
    pub http: reqwest::Client,
}

/// Settings of the controller loop.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Rollouts reconciled at once.
    pub concurrency: u16,
    /// The name Events are reported under, e.g. the pod name.
    pub instance: String,
    /// Watch only this namespace; `None` watches the whole cluster.
    pub namespace: Option<String>,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `stop` resolves (lost leadership or shutdown).
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    settings: Settings,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = settings.namespace.as_deref();
    let rollouts: Api<Rollout> = api(&client, ns);
    // The Rollouts are cached without their field-manager bookkeeping, which
    // nothing reads and which is a large share of each object.
    let (store, writer) = reflector::store();
    let rollout_changes = watcher(rollouts, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|rollout| rollout.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    // Only Siskin's own Deployments and Services, found by label, and only
    // their metadata: they trigger reconciles, which read what they need.
    let owned = watcher::Config::default().labels(ROLLOUT_LABEL);
    let reporter = Reporter {
        controller: "siskin".into(),
        instance: Some(settings.instance.clone()),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        metrics,
        superseded: Default::default(),
        http: hooks::http_client(),
    });
    let mut controller = Controller::for_stream(rollout_changes, store.clone())
        .owns(api::<PartialObjectMeta<Deployment>>(&client, ns), owned.clone())
        .owns(api::<PartialObjectMeta<Service>>(&client, ns), owned);
    if RouteKind::HttpRoute.is_served(&client).await {
        let store = store.clone();
        controller = controller.watches(
            api::<PartialObjectMeta<HttpRoute>>(&client, ns),
            watcher::Config::default(),
            move |route| routes::rollouts_routed_by(&store, RouteKind::HttpRoute, &route),
        );
    }
    if RouteKind::VirtualService.is_served(&client).await {
        controller = controller.watches(
            api::<PartialObjectMeta<VirtualService>>(&client, ns),
            watcher::Config::default(),
            move |route| routes::rollouts_routed_by(&store, RouteKind::VirtualService, &route),
        );
    }
    controller
        .with_config(
            ControllerConfig::default()
                .concurrency(settings.concurrency)
                .debounce(Duration::from_millis(50)),
        )
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
