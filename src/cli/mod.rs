//! The `siskin` command line; the same binary works as `kubectl siskin`
//! (install it, or a link to it, as `kubectl-siskin` on the PATH).

mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::api::{ManualRequest, RequestedAction, Rollout};
use crate::controller::fence::Fence;
use crate::controller::health::Health;
use crate::controller::{self, Metrics, Settings};
use crate::egress::{DestinationPolicy, EgressSettings};

#[derive(Parser, Debug)]
#[command(name = "siskin", version, about = "Progressive delivery for Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a Rollout lives.
#[derive(clap::Args, Debug)]
struct Target {
    /// The Rollout's name.
    name: String,
    /// Its namespace (default: the kubeconfig's).
    #[arg(short, long)]
    namespace: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller.
    Controller {
        /// Serve /metrics and /healthz here.
        #[arg(long, default_value = "0.0.0.0:8080", env = "SISKIN_METRICS_ADDR")]
        metrics_addr: SocketAddr,
        /// Namespace of the leader-election Lease.
        #[arg(long, default_value = "siskin-system", env = "POD_NAMESPACE")]
        lease_namespace: String,
        /// This replica's identity in the Lease and in Events.
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Rollouts reconciled at once.
        #[arg(long, default_value_t = 32)]
        concurrency: u16,
        /// Manage Rollouts of this namespace only (default: all namespaces).
        #[arg(long, env = "SISKIN_WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Manage only Rollouts labelled `siskin.io/instance=<ID>`, with a
        /// Lease of its own, so several controllers can share a cluster (e.g.
        /// one per team, or a new version tried beside the old). Without it,
        /// the controller manages the Rollouts that carry no such label.
        #[arg(long, env = "SISKIN_INSTANCE_ID")]
        instance_id: Option<String>,
        /// Client-side limit on API requests per second. 0, the default,
        /// sets none: the API server's priority and fairness protects it,
        /// and a client limit is what slows a controller with many Rollouts
        /// progressing at once.
        #[arg(long, default_value_t = 0.0)]
        kube_qps: f64,
        /// Requests that may go out at once under --kube-qps (default: twice
        /// the QPS).
        #[arg(long)]
        kube_burst: Option<u32>,
        /// Let webhooks and metric queries reach this CIDR although the
        /// default policy denies it (loopback, link-local, unspecified,
        /// multicast), e.g. 127.0.0.1/32 for a Prometheus on loopback.
        /// Repeatable. The API server's own address and port stay denied.
        #[arg(long = "allow-destination", value_name = "CIDR")]
        allow_destinations: Vec<ipnet::IpNet>,
        /// Deny webhooks and metric queries this CIDR too. Repeatable; of an
        /// allowed and a denied CIDR that both match, the more specific wins.
        #[arg(long = "deny-destination", value_name = "CIDR")]
        deny_destinations: Vec<ipnet::IpNet>,
        /// Let webhooks and metric queries reach only --allow-destination
        /// CIDRs.
        #[arg(long)]
        destinations_allow_only: bool,
        /// Show webhook answer bodies and low-level error causes in status
        /// and Events (they hold whatever the called service returns).
        #[arg(long)]
        reflect_response_bodies: bool,
        /// Webhook calls and metric queries in flight at once (default:
        /// half of --concurrency); a webhook call beyond it waits for a
        /// later reconcile.
        #[arg(long)]
        outbound_concurrency: Option<usize>,
        /// Webhook calls and metric queries in flight at once for the
        /// Rollouts of one namespace.
        #[arg(long, default_value_t = 4)]
        outbound_per_namespace: usize,
        /// Rollouts in progress at once across those this controller
        /// serves; a new canary beyond it waits, queued (Progressing reason
        /// Queued), and the longest waiting starts when one finishes. 0,
        /// the default, sets no cap.
        #[arg(long, default_value_t = 0, env = "SISKIN_MAX_ROLLOUTS_IN_PROGRESS")]
        max_rollouts_in_progress: usize,
    },
    /// Print the CRDs as YAML.
    Crd,
    /// Show a Rollout's steps, weights and analysis; --watch follows it live.
    Status {
        #[command(flatten)]
        target: Target,
        #[arg(short, long)]
        watch: bool,
    },
    /// Finish the current step or pause now; --full skips every remaining step.
    Promote {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        full: bool,
    },
    /// Return all traffic to stable now and scale the canary down.
    Abort(Target),
    /// Hold the current step until resumed.
    Pause(Target),
    /// Leave a pause; the step's hold starts again.
    Resume(Target),
    /// Start an aborted canary again from its first step.
    Retry(Target),
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crd => {
                print!("{}", crate::api::crds_yaml());
                Ok(())
            }
            Command::Controller {
                metrics_addr,
                lease_namespace,
                identity,
                concurrency,
                namespace,
                instance_id,
                kube_qps,
                kube_burst,
                allow_destinations,
                deny_destinations,
                destinations_allow_only,
                reflect_response_bodies,
                outbound_concurrency,
                outbound_per_namespace,
                max_rollouts_in_progress,
            } => {
                let cluster_url = kube::Config::infer().await.map(|c| c.cluster_url.to_string());
                let policy = DestinationPolicy::new(allow_destinations, deny_destinations, destinations_allow_only)
                    .with_api_server(cluster_url.as_deref().unwrap_or_default())
                    .await;
                let egress = EgressSettings {
                    policy,
                    reflect_response_bodies,
                    outbound_concurrency: outbound_concurrency.unwrap_or(usize::from(concurrency / 2)).max(1),
                    outbound_per_namespace,
                };
                let settings = Settings {
                    concurrency,
                    instance: identity.unwrap_or_else(|| format!("siskin-{:08x}", rand::random::<u32>())),
                    namespace,
                    instance_id,
                    home_namespace: lease_namespace.clone(),
                    egress,
                    max_rollouts_in_progress,
                };
                let metrics = Arc::new(Metrics::default());
                let lease_name = controller::leader::lease_name(settings.instance_id.as_deref());
                let fence = controller::leader::fence(
                    &settings.instance,
                    (&lease_namespace, &lease_name),
                    metrics.fenced_writes(),
                );
                let client = controller_client(kube_qps, kube_burst, &fence).await?;
                let lease = Lease {
                    namespace: lease_namespace,
                    fence,
                };
                run_controller(client, metrics, metrics_addr, lease, settings).await
            }
            Command::Status { target, watch } => {
                let (api, name) = rollouts(&target).await?;
                status::show(&api, &name, watch).await
            }
            Command::Promote { target, full } => {
                request(
                    &target,
                    if full {
                        RequestedAction::PromoteFull
                    } else {
                        RequestedAction::Promote
                    },
                )
                .await
            }
            Command::Abort(t) => request(&t, RequestedAction::Abort).await,
            Command::Pause(t) => request(&t, RequestedAction::Pause).await,
            Command::Resume(t) => request(&t, RequestedAction::Resume).await,
            Command::Retry(t) => request(&t, RequestedAction::Retry).await,
        }
    }
}

async fn rollouts(target: &Target) -> anyhow::Result<(Api<Rollout>, String)> {
    let client = Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG)")?;
    let api = match &target.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::default_namespaced(client),
    };
    Ok((api, target.name.clone()))
}

/// Records a manual request on the Rollout; the controller acts on it once.
/// The request names the canary in flight, so it cannot apply to a newer
/// one, and it never replaces an abort the controller has not handled yet.
async fn request(target: &Target, action: RequestedAction) -> anyhow::Result<()> {
    let (api, name) = rollouts(target).await?;
    let rollout = api
        .get(&name)
        .await
        .with_context(|| format!("reading Rollout {name}"))?;
    let status = rollout.status.as_ref();
    let last_handled = status.and_then(|s| s.last_handled_request.as_deref());
    if let Some(pending) = ManualRequest::from_rollout(&rollout)
        && !pending.may_be_replaced_by(action, last_handled)
    {
        anyhow::bail!("rollout {name}: an abort is pending and wins; {action} was not recorded");
    }
    let revision = status.and_then(|s| s.canary_revision.as_deref());
    let request = ManualRequest::new(action, Timestamp::now(), revision);
    // The resourceVersion makes the write conditional on what was read, so
    // an abort recorded in between is never overwritten.
    let mut patch = request.merge_patch();
    patch["metadata"]["resourceVersion"] = serde_json::json!(rollout.metadata.resource_version);
    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("recording {action} on Rollout {name} (it changed meanwhile? try again)"))?;
    match revision {
        Some(revision) => println!("rollout {name}: {action} requested for revision {revision}"),
        None => println!("rollout {name}: {action} requested"),
    }
    Ok(())
}

/// The client of the controller and of its lease manager: every write
/// passes the replica's write `fence` (innermost, so a write that waited
/// for the rate limit is checked when it goes out), with an optional
/// client-side rate limit.
async fn controller_client(qps: f64, burst: Option<u32>, fence: &Fence) -> anyhow::Result<Client> {
    let config = kube::Config::infer()
        .await
        .context("reading the cluster's address and credentials (KUBECONFIG or in-cluster)")?;
    let builder = kube::client::ClientBuilder::try_from(config)
        .context("connecting to the cluster")?
        .with_layer(fence);
    if qps <= 0.0 {
        return Ok(builder.build());
    }
    let burst = burst.unwrap_or_else(|| (qps * 2.0).ceil() as u32).max(1);
    // The limiter admits `burst` requests per window of burst/qps seconds:
    // `qps` on average, never more than `burst` at once.
    let window = Duration::from_secs_f64(f64::from(burst) / qps);
    let limit = tower::limit::RateLimitLayer::new(u64::from(burst), window);
    Ok(builder.with_layer(&limit).build())
}

/// Where the replicas' Lease lives, and this replica's fence on it.
struct Lease {
    namespace: String,
    fence: Fence,
}

async fn run_controller(
    client: Client,
    metrics: Arc<Metrics>,
    metrics_addr: SocketAddr,
    lease: Lease,
    settings: Settings,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::new(lease.fence.clone()));
    let server = tokio::spawn(controller::server::serve(metrics_addr, metrics.clone(), health.clone()));
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let mut leader = tokio::spawn(async move {
        let shared = (metrics, health, lease.fence);
        controller::leader::run_while_leader(client, &lease.namespace, shared, settings, shutdown).await
    });
    tokio::select! {
        res = &mut leader => res.context("controller task")?,
        res = server => res.context("metrics server task")?.context("metrics server"),
        signal = shutdown_signal() => {
            tracing::info!(%signal, "shutting down: finishing reconciles in flight, then releasing the lease");
            let _ = shutdown_tx.send(true);
            leader.await.context("controller task")?
        }
    }
}

/// Resolves on SIGTERM (what Kubernetes sends a pod it stops) or Ctrl-C.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
