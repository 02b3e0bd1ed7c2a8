//! Leader election on a Lease: only the leader runs the controller, so only
//! the leader writes. A replica that loses the Lease stops its controller
//! before anything else can be written; one that gains it starts afresh from
//! the Rollouts' status.

use std::sync::Arc;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;

use super::{Metrics, Settings};

/// How long a Lease holds without renewal, and the margin before its end at
/// which the holder renews. A follower takes over within about this long.
const LEASE_SECONDS: u64 = 15;
const GRACE_SECONDS: u64 = 5;

/// Runs the controller whenever this replica holds the Lease `lease` in
/// `namespace`, until the process ends.
pub async fn run_while_leader(
    client: Client,
    namespace: &str,
    lease: &str,
    metrics: Arc<Metrics>,
    settings: Settings,
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
        wait_for(&mut leading, true).await?;
        tracing::info!(identity = %settings.instance, "acquired the lease; starting the controller");
        let mut lost = leading.clone();
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = wait_for(&mut lost, false).await;
            let _ = lost_tx.send(());
        });
        let stop = async move {
            let _ = lost_rx.await;
        };
        super::run(client.clone(), metrics.clone(), settings.clone(), stop).await;
        if lease_task.is_finished() {
            // Without a live lease task nobody renews: writing on would risk
            // two leaders.
            anyhow::bail!("the lease task ended; exiting so a fresh process can take over");
        }
        tracing::warn!(identity = %settings.instance, "lost the lease; controller stopped");
    }
}

async fn wait_for(leading: &mut watch::Receiver<bool>, want: bool) -> anyhow::Result<()> {
    leading.wait_for(|is| *is == want).await?;
    Ok(())
}
