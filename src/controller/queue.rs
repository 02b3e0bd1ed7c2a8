//! The shell of the cap on rollouts in progress: counts, from the Rollout
//! cache, who holds a slot and who waited longest, and asks the pure
//! [`queue_place`] whether a new canary may start. Nothing is kept that the
//! cluster does not hold, except a few seconds' memory of the Rollouts just
//! admitted, so two reconciles running at once cannot both take the last
//! slot before either status shows it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::api::Rollout;
use crate::plan::{Contender, Observed, QueuePlace, queue_place};

/// How long an admission counts as a held slot without the cache showing
/// it: longer than a status write takes to come back through the watch.
const ADMISSION_MEMORY: Duration = Duration::from_secs(30);

/// The cap and what it needs to decide.
pub struct RolloutQueue {
    /// Rollouts in progress at most; 0 sets no cap.
    pub cap: usize,
    pub store: Store<Rollout>,
    admitted: Mutex<HashMap<String, Instant>>,
}

impl RolloutQueue {
    pub fn new(cap: usize, store: Store<Rollout>) -> Self {
        RolloutQueue {
            cap,
            store,
            admitted: Mutex::new(HashMap::new()),
        }
    }

    /// Where `rollout` waits, if it is about to start a new canary and no
    /// slot is its own; `None` when it may start, or starts nothing.
    pub fn place(&self, rollout: &Rollout, observed: &Observed) -> Option<QueuePlace> {
        if self.cap == 0 || !starts_a_canary(rollout, observed) {
            return None;
        }
        let me = key(rollout);
        let rollouts = self.store.state();
        let mut admitted = self.admitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        admitted.retain(|_, at| at.elapsed() < ADMISSION_MEMORY);
        let keys: Vec<String> = rollouts.iter().map(|r| key(r)).collect();
        let others = rollouts.iter().zip(&keys).map(|(r, k)| Contender {
            key: k,
            status: r.status.as_ref(),
            admitted: admitted.contains_key(k),
        });
        let mine = Contender {
            key: &me,
            status: rollout.status.as_ref(),
            admitted: false,
        };
        let place = queue_place(mine, others, self.cap);
        if place.is_none() {
            admitted.insert(me, Instant::now());
        }
        place
    }
}

impl RolloutQueue {
    /// Forgets an admission whose plan started nothing after all.
    pub fn settle(&self, rollout: &Rollout, planned: &crate::api::RolloutStatus) {
        if !planned.holds_rollout_slot() {
            let mut admitted = self.admitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            admitted.remove(&key(rollout));
        }
    }
}

fn key(rollout: &Rollout) -> String {
    format!("{}/{}", rollout.namespace().unwrap_or_default(), rollout.name_any())
}

/// Whether the engine would start a new canary: a stable revision, a
/// different desired one that is not already the canary (an aborted canary
/// waits for `retry`, which does not queue), and no slot held already.
fn starts_a_canary(rollout: &Rollout, observed: &Observed) -> bool {
    let status = rollout.status.as_ref();
    let stable = status.and_then(|s| s.stable_revision.as_deref());
    let desired = observed.desired_revision.as_deref();
    let canary = status.and_then(|s| s.canary_revision.as_deref());
    let holds = status.is_some_and(crate::api::RolloutStatus::holds_rollout_slot);
    stable.is_some() && desired.is_some() && stable != desired && canary != desired && !holds
}
