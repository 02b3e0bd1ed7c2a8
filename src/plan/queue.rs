//! The cap on rollouts in progress across the cluster
//! (`--max-rollouts-in-progress`): which new canary may start now, and the
//! place in the queue of one that may not. Pure: the controller passes
//! every Rollout's status as its cache holds it, so the queue lives in the
//! cluster (`status.queuedSince`), survives restarts, and is served oldest
//! first.

use jiff::Timestamp;

use crate::api::RolloutStatus;

/// Where a new canary waits for a rollout slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePlace {
    /// 1 for the next to start.
    pub position: usize,
    pub cap: usize,
    /// Rollouts holding a slot now.
    pub in_progress: usize,
}

/// Another Rollout the controller serves, as the queue sees it.
#[derive(Clone, Copy, Debug)]
pub struct Contender<'a> {
    /// `namespace/name`: breaks ties between equal waiting times.
    pub key: &'a str,
    pub status: Option<&'a RolloutStatus>,
    /// Admitted by this controller a moment ago, before its status shows it.
    pub admitted: bool,
}

impl Contender<'_> {
    fn holds_slot(&self) -> bool {
        self.admitted || self.status.is_some_and(RolloutStatus::holds_rollout_slot)
    }

    fn waiting_since(&self) -> Option<Timestamp> {
        self.status
            .filter(|s| !s.holds_rollout_slot())
            .and_then(|s| s.queued_since.as_ref())
            .map(|t| t.0)
    }
}

/// Whether the Rollout `me` may start a new canary now, with `cap` slots
/// (0: no cap) and `others` the rest of the Rollouts. `None`: it may.
/// The Rollouts that waited longest take the free slots first; one that
/// has not waited yet queues behind every one that has.
pub fn queue_place<'a>(
    me: Contender<'a>,
    others: impl IntoIterator<Item = Contender<'a>>,
    cap: usize,
) -> Option<QueuePlace> {
    if cap == 0 {
        return None;
    }
    let mine = me.waiting_since().map(|since| (since, me.key));
    let (mut in_progress, mut ahead) = (0usize, 0usize);
    for other in others.into_iter().filter(|o| o.key != me.key) {
        if other.holds_slot() {
            in_progress += 1;
        } else if let Some(since) = other.waiting_since()
            && mine.is_none_or(|mine| (since, other.key) < mine)
        {
            ahead += 1;
        }
    }
    let free = cap.saturating_sub(in_progress);
    (ahead >= free).then(|| QueuePlace {
        position: ahead - free + 1,
        cap,
        in_progress,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::RolloutPhase;

    fn in_flight() -> RolloutStatus {
        RolloutStatus {
            phase: Some(RolloutPhase::Progressing),
            stable_revision: Some("a".into()),
            canary_revision: Some("b".into()),
            ..RolloutStatus::default()
        }
    }

    fn waiting(since: i64) -> RolloutStatus {
        RolloutStatus {
            phase: Some(RolloutPhase::Queued),
            stable_revision: Some("a".into()),
            queued_since: Some(Time(Timestamp::from_second(since).unwrap_or(Timestamp::UNIX_EPOCH))),
            ..RolloutStatus::default()
        }
    }

    fn contender<'a>(key: &'a str, status: &'a RolloutStatus) -> Contender<'a> {
        Contender {
            key,
            status: Some(status),
            admitted: false,
        }
    }

    fn new_one(key: &str) -> Contender<'_> {
        Contender {
            key,
            status: None,
            admitted: false,
        }
    }

    #[test]
    fn no_cap_never_queues() {
        let busy = in_flight();
        let others = [contender("a/1", &busy), contender("a/2", &busy)];
        assert_eq!(queue_place(new_one("a/3"), others, 0), None);
    }

    #[test]
    fn starts_while_a_slot_is_free() {
        let busy = in_flight();
        assert_eq!(queue_place(new_one("a/2"), [contender("a/1", &busy)], 2), None);
    }

    #[test]
    fn queues_when_every_slot_is_taken_and_names_its_place() {
        let busy = in_flight();
        let early = waiting(100);
        let others = [
            contender("a/1", &busy),
            contender("a/2", &busy),
            contender("a/3", &early),
        ];
        let place = queue_place(new_one("a/4"), others, 2);
        assert_eq!(
            place,
            Some(QueuePlace {
                position: 2,
                cap: 2,
                in_progress: 2
            })
        );
    }

    #[test]
    fn the_longest_waiting_starts_first_when_a_slot_frees() {
        let busy = in_flight();
        let (first, second) = (waiting(100), waiting(200));
        let everyone = [
            contender("a/1", &busy),
            contender("b/x", &first),
            contender("a/y", &second),
        ];
        assert_eq!(queue_place(everyone[1], everyone, 2), None, "one slot free: the oldest");
        let place = queue_place(everyone[2], everyone, 2);
        assert_eq!(place.map(|p| p.position), Some(1), "the next one waits its turn");
    }

    #[test]
    fn equal_waiting_times_go_by_name() {
        let same = waiting(100);
        let busy = in_flight();
        let everyone = [
            contender("a/1", &busy),
            contender("ns/b", &same),
            contender("ns/a", &same),
        ];
        assert_eq!(queue_place(everyone[2], everyone, 2), None);
        assert!(queue_place(everyone[1], everyone, 2).is_some());
    }

    #[test]
    fn a_rollout_just_admitted_holds_its_slot_before_its_status_shows_it() {
        let admitted = Contender {
            key: "a/1",
            status: None,
            admitted: true,
        };
        assert!(queue_place(new_one("a/2"), [admitted], 1).is_some());
    }

    #[test]
    fn aborted_and_finished_rollouts_hold_no_slot() {
        let mut aborted = in_flight();
        aborted.phase = Some(RolloutPhase::Aborted);
        let healthy = RolloutStatus {
            phase: Some(RolloutPhase::Healthy),
            ..RolloutStatus::default()
        };
        let others = [contender("a/1", &aborted), contender("a/2", &healthy)];
        assert_eq!(queue_place(new_one("a/3"), others, 1), None);
    }
}
