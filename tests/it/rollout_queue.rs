//! The cap on rollouts in progress, on the sandbox: with
//! `--max-rollouts-in-progress 1`, of three releases one runs and two wait
//! queued before their first step, and they start one at a time, oldest
//! first, as the ones before them finish.

use std::time::Duration;

use crate::support::*;
use serde_json::json;
use siskin::api::{Rollout, RolloutPhase, RolloutStatus};

const TIMEOUT: Duration = Duration::from_secs(120);
const NAMES: [&str; 3] = ["a", "b", "c"];

fn rollout(name: &str) -> Rollout {
    let steps = json!([{"weight": 50}, {"pause": {}}]);
    let mut rollout = canary_rollout(name, name, "v1", serde_json::Value::Null, steps);
    rollout.spec.replicas = 2;
    rollout
}

fn in_flight(s: &RolloutStatus) -> bool {
    s.phase == Some(RolloutPhase::Paused) && s.canary_revision.is_some()
}

fn queued_at(position: usize) -> impl Fn(&RolloutStatus) -> bool {
    move |s| {
        s.phase == Some(RolloutPhase::Queued)
            && condition_of(s, "Progressing").is_some_and(|(status, reason, message)| {
                status == "True" && reason == "Queued" && message.contains(&format!("place {position} "))
            })
    }
}

/// How many of the three hold a slot now.
async fn in_progress(ns: &TestNamespace) -> usize {
    let mut n = 0;
    for name in NAMES {
        if rollout_status(ns, name).await.is_some_and(|s| s.holds_rollout_slot()) {
            n += 1;
        }
    }
    n
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn the_cap_queues_extra_rollouts_and_starts_them_oldest_first() {
    let ns = TestNamespace::new("rollout-queue").await;
    let _controller = ControllerProcess::launch(&ns, "a")
        .env("SISKIN_MAX_ROLLOUTS_IN_PROGRESS", "1")
        .start();
    for name in NAMES {
        create(&ns.api::<Rollout>(), &rollout(name)).await;
    }
    for name in NAMES {
        wait_rollout_within(&ns, name, "v1 stable", TIMEOUT, |s| {
            s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.is_some()
        })
        .await;
    }

    // Released in this order, a second apart, so each waits longer than
    // the next.
    release_version(&ns, "a", "v2").await;
    wait_rollout_within(&ns, "a", "a in flight", TIMEOUT, in_flight).await;
    release_version(&ns, "b", "v2").await;
    wait_rollout_within(&ns, "b", "b queued first", TIMEOUT, queued_at(1)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    release_version(&ns, "c", "v2").await;
    let c = wait_rollout_within(&ns, "c", "c queued second", TIMEOUT, queued_at(2)).await;
    assert_eq!(c.canary_revision, None, "a queued canary has not started");
    let note = wait_event(&ns, "b", "Normal", "Queued").await;
    assert!(note.contains("at most 1"), "the Event names the cap: {note}");
    assert_eq!(in_progress(&ns).await, 1);

    siskin(&["promote", "a", "-n", &ns.name]).await;
    wait_rollout_within(&ns, "b", "b starts when a finishes", TIMEOUT, in_flight).await;
    wait_rollout_within(&ns, "c", "c next in the queue", TIMEOUT, queued_at(1)).await;
    assert!(
        rollout_status(&ns, "a")
            .await
            .is_some_and(|s| s.phase == Some(RolloutPhase::Healthy)),
        "a finished"
    );
    assert_eq!(in_progress(&ns).await, 1);

    siskin(&["promote", "b", "-n", &ns.name]).await;
    wait_rollout_within(&ns, "c", "c starts when b finishes", TIMEOUT, in_flight).await;
    assert_eq!(in_progress(&ns).await, 1);
    delete_rollouts(&ns).await;
}
