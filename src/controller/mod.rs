//! The thin Kubernetes shell around the pure step engine: watch Rollouts,
//! observe the world into plain data, ask [`crate::plan::plan`], apply its
//! actions, write status, publish Events. Leader election gates all of it.

mod act;
mod analysis;
mod context;
mod credentials;
mod error;
pub mod fence;
pub mod health;
mod hooks;
pub mod leader;
pub mod metrics;
mod observe;
mod queue;
mod reconcile;
mod routes;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::core::{DynamicObject, PartialObjectMeta};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};

pub use context::{Context, FIELD_MANAGER, FINALIZER};
pub use error::Error;
pub use metrics::Metrics;

use crate::api::{INSTANCE_LABEL, ROLLOUT_LABEL, Rollout, RouteKind};
use crate::egress::{Egress, EgressSettings};

/// Settings of the controller loop.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Rollouts reconciled at once.
    pub concurrency: u16,
    /// The name Events are reported under, e.g. the pod name.
    pub instance: String,
    /// Watch only this namespace; `None` watches the whole cluster.
    pub namespace: Option<String>,
    /// Manage only the Rollouts labelled with this instance id (see
    /// [`crate::api::INSTANCE_LABEL`]); `None` manages the unlabelled ones.
    pub instance_id: Option<String>,
    /// The controller's own namespace, where its Lease lives.
    pub home_namespace: String,
    /// Where webhooks and metric queries may go, and how many at once.
    pub egress: EgressSettings,
    /// Rollouts in progress at once across those served; a new canary
    /// beyond it waits, queued. 0 sets no cap.
    pub max_rollouts_in_progress: usize,
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
    health: Arc<health::Health>,
    settings: Settings,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // kube-runtime's runner starts nothing until the Rollout cache has its
    // first list, and after a graceful shutdown it keeps waiting for that
    // list: a stop that comes earlier (a SIGTERM right after the Lease was
    // won, or while the API server does not answer) would hang for ever.
    // Nothing can be in flight then, so such a stop ends the controller at
    // once; a later one waits for the reconciles in flight.
    let stop = stop.boxed().shared();
    let (store, writer) = reflector::store();
    let stop_before_first_list = {
        let (stop, store) = (stop.clone(), store.clone());
        async move {
            stop.await;
            if store.wait_until_ready().now_or_never().is_some() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = serve(client, (metrics, health), settings, (store, writer), stop) => {}
        () = stop_before_first_list => tracing::info!("stopped before the first list of Rollouts"),
    }
}

/// The controller itself: watches, then reconciles until `stop`.
async fn serve(
    client: Client,
    (metrics, health): (Arc<Metrics>, Arc<health::Health>),
    settings: Settings,
    (store, writer): (reflector::Store<Rollout>, reflector::store::Writer<Rollout>),
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = settings.namespace.as_deref();
    let rollouts: Api<Rollout> = api(&client, ns);
    // The Rollouts are cached without their field-manager bookkeeping, which
    // nothing reads and which is a large share of each object.
    let selector = match &settings.instance_id {
        Some(id) => format!("{INSTANCE_LABEL}={id}"),
        None => format!("!{INSTANCE_LABEL}"),
    };
    let rollout_changes = watcher(rollouts, watcher::Config::default().labels(&selector).any_semantic())
        .default_backoff()
        .modify(|rollout| rollout.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    // Only Siskin's own Deployments and Services, found by label. They
    // trigger reconciles, which read them from these caches.
    let owned = watcher::Config::default().labels(ROLLOUT_LABEL).any_semantic();
    let (deployments, deployment_cache) = reflector::store();
    let deployment_changes = watcher(api::<Deployment>(&client, ns), owned.clone())
        .default_backoff()
        .modify(observe::slim_deployment)
        .reflect(deployment_cache)
        .touched_objects();
    let (services, service_cache) = reflector::store();
    let service_changes = watcher(api::<Service>(&client, ns), owned)
        .default_backoff()
        .modify(|service: &mut Service| service.managed_fields_mut().clear())
        .reflect(service_cache)
        .touched_objects();
    let reporter = Reporter {
        controller: "siskin".into(),
        instance: Some(settings.instance.clone()),
    };
    let ctx_counters = metrics.outbound.clone();
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        owned: observe::OwnedObjects { deployments, services },
        metrics,
        health,
        superseded: Default::default(),
        status_written: Default::default(),
        egress: Arc::new(Egress::new(&settings.egress, ctx_counters)),
        queue: queue::RolloutQueue::new(settings.max_rollouts_in_progress, store.clone()),
        home_namespace: settings.home_namespace.clone(),
    });
    let mut controller = Controller::for_stream(rollout_changes, store.clone())
        .owns_stream(deployment_changes)
        .owns_stream(service_changes);
    // Routes are watched by metadata only, so a Rollout hears at once when
    // its route appears, is fixed, changes under it, or is accepted.
    for kind in RouteKind::ALL {
        let Some(resource) = routes::served(&client, kind).await else {
            continue;
        };
        let routes: Api<PartialObjectMeta<DynamicObject>> = match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let store = store.clone();
        controller = controller.watches_with(routes, resource, watcher::Config::default(), move |route| {
            routes::rollouts_routed_by(&store, kind, &route)
        });
    }
    let controller = controller
        .with_config(
            ControllerConfig::default()
                .concurrency(settings.concurrency)
                .debounce(Duration::from_millis(50)),
        )
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|outcome| {
            reconcile::log_outcome(outcome);
            futures::future::ready(())
        });
    controller.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An API server that takes requests and never answers: the Rollouts
    /// are never listed.
    #[tokio::test]
    async fn a_stop_before_the_first_list_ends_the_controller_at_once() {
        let (service, mut api_server) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let client = Client::new(service, "default");
        let settings = Settings {
            concurrency: 1,
            instance: "test".into(),
            namespace: None,
            instance_id: None,
            home_namespace: "default".into(),
            egress: EgressSettings::default(),
            max_rollouts_in_progress: 0,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stop = async move {
            let _ = stop_rx.await;
        };
        let fence = fence::Fence::new("test", "default", "lease", Duration::from_secs(12), Default::default());
        let health = Arc::new(health::Health::new(fence));
        let controller = tokio::spawn(run(client, Arc::new(Metrics::default()), health, settings, stop));
        let unanswered = api_server
            .next_request()
            .await
            .expect("the controller asks the API server");
        let _ = stop_tx.send(());
        let ended = tokio::time::timeout(Duration::from_secs(30), controller).await;
        assert!(
            matches!(ended, Ok(Ok(()))),
            "the controller ended on stop, without a panic, not waiting for a list that never comes: {ended:?}"
        );
        drop(unanswered);
    }
}
