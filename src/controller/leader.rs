//! Leader election on a Lease: only the leader runs the controller, so only
//! the leader writes. A replica that loses the Lease stops its controller
//! before anything else can be written; one that gains it starts afresh from
//! the Rollouts' status.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;

use super::{Metrics, Settings};

/// How long a Lease holds without renewal, and the margin before its end at
/// which the holder renews. A follower takes over within about this long.
const LEASE_SECONDS: u64 = 15;
const GRACE_SECONDS: u64 = 5;

/// Runs the controller whenever this replica holds the Lease `lease` in
/// `namespace`, until `shutdown` turns true. On shutdown the controller
/// finishes the reconciles in flight, then the Lease is released so the next
/// replica need not wait for it to expire.
pub async fn run_while_leader(
    client: Client,
    namespace: &str,
    lease: &str,
    metrics: Arc<Metrics>,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let manager = LeaseManagerBuilder::new(client.clone(), lease)
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
        let (mut lost, mut stopping) = (leading.clone(), shutdown.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let watchdog = tokio::spawn(async move {
            tokio::select! {
                _ = wait_for(&mut lost, false) => {}
                _ = wait_for(&mut stopping, true) => {}
            }
            let _ = stop_tx.send(());
        });
        let stop = async move {
            let _ = stop_rx.await;
        };
        super::run(client.clone(), metrics.clone(), settings.clone(), stop).await;
        // Its copy of the lease channel must go too, or the lease task never
        // sees the channel close.
        watchdog.abort();
        if *shutdown.borrow() {
            break;
        }
        if lease_task.is_finished() {
            // Without a live lease task nobody renews: writing on would risk
            // two leaders.
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
