//! Leader election on a Lease: only the leader runs the controller, so only
//! the leader writes. A replica that loses the Lease stops its controller;
//! one that gains it starts afresh from the Rollouts' status.
//!
//! Stopping the controller is not enough on its own: a replica that was
//! paused cannot stop anything until it runs again, and by then its
//! reconciles in flight are already writing. The write fence
//! ([`super::fence`]) covers that: it refuses writes once the last confirmed
//! renewal is older than the Lease minus a margin, before any other
//! replica may take the Lease.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

use super::fence::Fence;
use super::health::Health;
use super::{Metrics, Settings};

/// The Lease the replicas compete for.
pub const LEASE_NAME: &str = "siskin-controller";

/// The Lease of the controllers started with `instance_id`: one per
/// instance, so instances sharing a namespace do not take turns.
pub fn lease_name(instance_id: Option<&str>) -> String {
    match instance_id {
        Some(id) => format!("{LEASE_NAME}-{id}"),
        None => LEASE_NAME.to_string(),
    }
}
/// How long a Lease holds without renewal, and the margin before its end at
/// which the holder renews. A follower takes over within about this long.
const LEASE_SECONDS: u64 = 15;
const GRACE_SECONDS: u64 = 6;
/// The fence closes this long before another replica may take the Lease:
/// room for clock skew between replicas and a write already on the wire.
/// Smaller than the grace, so a renewal sent on time lands before it closes.
const FENCE_MARGIN: Duration = Duration::from_secs(3);
/// Reconciles in flight when the controller stops get this long, then they
/// are dropped. Shorter than the fence margin: on shutdown the Lease is
/// still ours and is released only after the drain, so they finish (or are
/// dropped) before anyone else can lead.
const DRAIN: Duration = Duration::from_secs(2);

/// The write fence of replica `identity` for the Lease in `namespace`.
pub fn fence(identity: &str, (namespace, lease): (&str, &str), refused: Counter) -> Fence {
    let valid_for = Duration::from_secs(LEASE_SECONDS) - FENCE_MARGIN;
    Fence::new(identity, namespace, lease, valid_for, refused)
}

/// Runs the controller whenever this replica holds the Lease in `namespace`,
/// until `shutdown` turns true. `client` must carry the replica's `fence`.
/// On shutdown the controller gets 2 s to finish the reconciles in
/// flight, then the Lease is released so the next replica need not wait for
/// it to expire.
pub async fn run_while_leader(
    client: Client,
    namespace: &str,
    (metrics, health, fence): (Arc<Metrics>, Arc<Health>, Fence),
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let manager = LeaseManagerBuilder::new(client.clone(), lease_name(settings.instance_id.as_deref()))
        .with_namespace(namespace)
        .with_parameters(LeaseParams::new(
            settings.instance.clone(),
            LEASE_SECONDS,
            GRACE_SECONDS,
        ))
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    loop {
        tokio::select! {
            res = wait_for(&mut leading, true) => res?,
            _ = wait_for(&mut shutdown, true) => break,
        }
        tracing::info!(identity = %settings.instance, "acquired the lease; starting the controller");
        health.set_leading(true);
        let (mut lost, mut stopping) = (leading.clone(), shutdown.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (watch_fence, watch_health) = (fence.clone(), health.clone());
        let watchdog = tokio::spawn(async move {
            tokio::select! {
                // Lost, or the lease task ended: either way the hold is gone.
                _ = wait_for(&mut lost, false) => watch_fence.revoke(),
                _ = wait_for(&mut stopping, true) => {}
            }
            watch_health.set_leading(false);
            let _ = stop_tx.send(());
        });
        let stop = async move {
            let _ = stop_rx.await;
        }
        .boxed()
        .shared();
        let controller = super::run(
            client.clone(),
            metrics.clone(),
            health.clone(),
            settings.clone(),
            stop.clone(),
        );
        let deadline = async {
            stop.await;
            tokio::time::sleep(DRAIN).await;
        };
        tokio::select! {
            () = controller => {}
            () = deadline => tracing::warn!(drain = ?DRAIN, "reconciles still in flight at the drain deadline; dropped"),
        }
        health.set_leading(false);
        // Its copy of the lease channel must go too, or the lease task never
        // sees the channel close.
        watchdog.abort();
        if *shutdown.borrow() {
            break;
        }
        if lease_task.is_finished() {
            // Without a live lease task nobody renews: writing on would risk
            // two leaders.
            health.lease_task_ended();
            anyhow::bail!("the lease task ended; exiting so a fresh process can take over");
        }
        tracing::warn!(identity = %settings.instance, "lost the lease; controller stopped");
    }
    // Closing the channel makes the lease task release the Lease and end.
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!(identity = %settings.instance, "released the lease"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "cannot release the lease; it expires on its own"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the lease task failed; the lease expires on its own"),
        Err(_) => tracing::warn!("releasing the lease timed out; it expires on its own"),
    }
    Ok(())
}

async fn wait_for(leading: &mut watch::Receiver<bool>, want: bool) -> anyhow::Result<()> {
    leading.wait_for(|is| *is == want).await?;
    Ok(())
}
