//! Outbound slots: how many tenant calls may be in flight at once, in all
//! and per namespace. Calls run inside reconciles, so without a bound a few
//! endpoints that never answer would hold every reconcile of the
//! controller, aborts of other Rollouts included.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The pool of outbound slots.
#[derive(Clone, Debug)]
pub struct OutboundSlots {
    global: Arc<Semaphore>,
    per_namespace: usize,
    in_use: Arc<Mutex<HashMap<String, usize>>>,
    released: Arc<Notify>,
}

/// One call's right to go out; the slot is free again when this drops.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    namespace: String,
    in_use: Arc<Mutex<HashMap<String, usize>>>,
    released: Arc<Notify>,
}

impl OutboundSlots {
    /// `global` slots in all, at most `per_namespace` of them for one
    /// namespace (both at least one).
    pub fn new(global: usize, per_namespace: usize) -> Self {
        OutboundSlots {
            global: Arc::new(Semaphore::new(global.max(1))),
            per_namespace: per_namespace.max(1),
            in_use: Arc::default(),
            released: Arc::default(),
        }
    }

    /// A slot for a call from `namespace` if one is free now; never waits.
    pub fn try_acquire(&self, namespace: &str) -> Option<Slot> {
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        let count = in_use.get(namespace).copied().unwrap_or(0);
        if count >= self.per_namespace {
            return None;
        }
        let permit = self.global.clone().try_acquire_owned().ok()?;
        in_use.insert(namespace.to_string(), count + 1);
        Some(Slot {
            _permit: permit,
            namespace: namespace.to_string(),
            in_use: self.in_use.clone(),
            released: self.released.clone(),
        })
    }

    /// A slot for a call from `namespace`, waiting at most `wait` for one.
    pub async fn acquire_within(&self, namespace: &str, wait: Duration) -> Option<Slot> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(slot) = self.try_acquire(namespace) {
                return Some(slot);
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_use.get_mut(&self.namespace) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_use.remove(&self.namespace);
            }
        }
        drop(in_use);
        self.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_gets_no_more_than_its_share() {
        let slots = OutboundSlots::new(8, 2);
        let held = [slots.try_acquire("a"), slots.try_acquire("a")];
        assert!(held.iter().all(Option::is_some));
        assert!(slots.try_acquire("a").is_none(), "a third call from a waits");
        assert!(slots.try_acquire("b").is_some(), "another namespace still calls");
        drop(held);
        assert!(slots.try_acquire("a").is_some(), "a released slot is free again");
    }

    #[test]
    fn no_call_goes_out_once_every_slot_is_held() {
        let slots = OutboundSlots::new(2, 4);
        let _held = [slots.try_acquire("a"), slots.try_acquire("b")];
        assert!(slots.try_acquire("c").is_none());
    }

    #[tokio::test]
    async fn a_waiting_call_gets_a_slot_released_in_time_and_gives_up_after_the_wait() {
        let slots = OutboundSlots::new(1, 1);
        let held = slots.try_acquire("a").expect("a free slot");
        let started = std::time::Instant::now();
        assert!(slots.acquire_within("b", Duration::from_millis(100)).await.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire_within("b", Duration::from_secs(5)).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert!(waiter.await.expect("the waiter ends"));
    }
}
