//! The `siskin` command line; the same binary works as `kubectl siskin`
//! (install it, or a link to it, as `kubectl-siskin` on the PATH).

mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::api::{ManualRequest, RequestedAction, Rollout};
use crate::controller::{self, Metrics, Settings};

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
            } => {
                let settings = Settings {
                    concurrency,
                    instance: identity.unwrap_or_else(|| format!("siskin-{:08x}", rand::random::<u32>())),
                    namespace,
                };
                run_controller(metrics_addr, lease_namespace, settings).await
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
async fn request(target: &Target, action: RequestedAction) -> anyhow::Result<()> {
    let (api, name) = rollouts(target).await?;
    let request = ManualRequest::new(action, Timestamp::now());
    api.patch(&name, &PatchParams::default(), &Patch::Merge(request.merge_patch()))
        .await
        .with_context(|| format!("recording {action} on Rollout {name}"))?;
    println!("rollout {name}: {action} requested");
    Ok(())
}

async fn run_controller(metrics_addr: SocketAddr, lease_namespace: String, settings: Settings) -> anyhow::Result<()> {
    let client = Client::try_default().await.context("connecting to the cluster")?;
    let metrics = Arc::new(Metrics::default());
    let server = tokio::spawn(controller::server::serve(metrics_addr, metrics.clone()));
    let leader = controller::leader::run_while_leader(client, &lease_namespace, "siskin-controller", metrics, settings);
    tokio::select! {
        res = leader => res,
        res = server => res.context("metrics server task")?.context("metrics server"),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
