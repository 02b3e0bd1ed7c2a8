//! What `/healthz` answers: whether this replica can still make progress.
//! A follower is healthy while its lease task runs; a leader also needs an
//! open write fence and no reconcile stuck in flight.
//!
//! "No reconcile completed for a while" is not a sign of trouble here: a
//! paused or settled Rollout waits for a change, so a healthy leader may not
//! reconcile for hours. A reconcile that started and never ended is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::fence::Fence;

/// A reconcile in flight this long is stuck: every call it makes (API,
/// Prometheus, webhooks) has a timeout far shorter.
pub const STUCK_RECONCILE: Duration = Duration::from_secs(180);

pub struct Health {
    fence: Fence,
    leading: AtomicBool,
    lease_task_ended: AtomicBool,
    next_id: AtomicU64,
    /// Reconciles in flight: Rollout (`namespace/name`) and start.
    in_flight: Mutex<HashMap<u64, (String, Instant)>>,
}

impl Health {
    pub fn new(fence: Fence) -> Self {
        Health {
            fence,
            leading: AtomicBool::new(false),
            lease_task_ended: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            in_flight: Mutex::default(),
        }
    }

    /// This replica's controller runs (true) or has stopped or lost the Lease.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }

    /// Nobody renews the Lease for this replica any more.
    pub fn lease_task_ended(&self) {
        self.lease_task_ended.store(true, Ordering::Relaxed);
    }

    /// Counts a reconcile of `rollout` as in flight until the guard drops.
    pub fn reconciling(&self, rollout: String) -> Reconciling<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.in_flight().insert(id, (rollout, Instant::now()));
        Reconciling { health: self, id }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, Instant)>> {
        self.in_flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Ok` if the replica makes progress at `now`, else why not.
    pub fn check(&self, now: Instant) -> Result<(), String> {
        if self.lease_task_ended.load(Ordering::Relaxed) {
            return Err("the lease task ended: nobody renews or watches the Lease".into());
        }
        if !self.leading.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !self.fence.is_valid_at(now) {
            let since = self.fence.since_renewal(now);
            return Err(format!(
                "leading, but the Lease was not renewed within {:?} (last renewal: {}); writes are refused",
                self.fence.valid_for(),
                since.map_or("none".into(), |s| format!("{s:?} ago")),
            ));
        }
        let oldest = self
            .in_flight()
            .values()
            .map(|(rollout, started)| (rollout.clone(), now.saturating_duration_since(*started)))
            .max_by_key(|(_, took)| *took);
        match oldest {
            Some((rollout, took)) if took >= STUCK_RECONCILE => {
                Err(format!("the reconcile of {rollout} has been in flight for {took:?}"))
            }
            _ => Ok(()),
        }
    }
}

/// A reconcile in flight; see [`Health::reconciling`].
pub struct Reconciling<'a> {
    health: &'a Health,
    id: u64,
}

impl Drop for Reconciling<'_> {
    fn drop(&mut self) {
        self.health.in_flight().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    fn health() -> (Health, Fence) {
        let fence = Fence::new("a", "ns", "lease", Duration::from_secs(12), Counter::default());
        (Health::new(fence.clone()), fence)
    }

    #[test]
    fn a_follower_is_healthy_without_a_fence() {
        let (health, _) = health();
        assert_eq!(health.check(Instant::now()), Ok(()));
    }

    #[test]
    fn a_leader_with_a_renewed_fence_is_healthy() {
        let (health, fence) = health();
        fence.confirm(Instant::now());
        health.set_leading(true);
        assert_eq!(health.check(Instant::now()), Ok(()));
    }

    #[test]
    fn a_leader_whose_fence_expired_is_unhealthy() {
        let (health, fence) = health();
        let renewed = Instant::now();
        fence.confirm(renewed);
        health.set_leading(true);
        let later = renewed + Duration::from_secs(13);
        let why = health.check(later).expect_err("not renewed for 13s");
        assert!(why.contains("not renewed"), "{why}");
    }

    #[test]
    fn an_ended_lease_task_is_unhealthy_even_for_a_follower() {
        let (health, _) = health();
        health.lease_task_ended();
        assert!(health.check(Instant::now()).is_err());
    }

    #[test]
    fn a_reconcile_stuck_in_flight_is_unhealthy_until_it_ends() {
        let (health, fence) = health();
        health.set_leading(true);
        let reconciling = health.reconciling("ns/demo".into());
        let later = Instant::now() + STUCK_RECONCILE;
        fence.confirm(later);
        let why = health.check(later).expect_err("in flight for the stuck limit");
        assert!(why.contains("ns/demo"), "{why}");
        drop(reconciling);
        assert_eq!(health.check(later), Ok(()));
    }

    #[test]
    fn an_idle_leader_is_healthy_however_long_since_its_last_reconcile() {
        let (health, fence) = health();
        health.set_leading(true);
        drop(health.reconciling("ns/demo".into()));
        let much_later = Instant::now() + Duration::from_secs(24 * 3600);
        fence.confirm(much_later);
        assert_eq!(health.check(much_later), Ok(()));
    }
}
