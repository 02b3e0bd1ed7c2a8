//! A rolling update's pod moves: the new revision grows and the old one
//! shrinks toward a target, in the moves a Deployment would make, so that
//! there are never more than `replicas + maxSurge` pods and never fewer
//! than `replicas - maxUnavailable` available. The same moves run forward
//! through the batches, to promote, and backward to abort.

use crate::api::conditions::reasons;

use super::context::{Ctx, POLL, Pair, ROUTE_MISSING_POLL};
use super::decision::Action;
use super::observed::RevisionState;
use super::steps::{Shape, StepPlan};

/// Pod counts of the two revisions, as planned (`spec.replicas`) and as
/// available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pods {
    pub canary: i32,
    pub stable: i32,
    pub canary_available: i32,
    pub stable_available: i32,
}

/// The next sizes on the way to `target` new pods out of `replicas`: grow
/// the side below its target as far as the surge allows, and shrink the
/// side above its target as far as availability allows. Unavailable pods
/// of the shrinking side may go at once: they serve nobody.
pub(super) fn next_move(pods: Pods, replicas: i32, surge: i32, unavailable: i32, target: i32) -> (i32, i32) {
    // In i64: a surge or observed counts near i32::MAX (a hand-edited
    // Deployment, a huge maxSurge) must not overflow; results are clamped
    // back into the pods that exist or are wanted.
    let wide = |n: i32| i64::from(n);
    let replicas = wide(replicas.max(0));
    let target = wide(target).clamp(0, replicas);
    let mut room = (replicas + wide(surge) - wide(pods.canary) - wide(pods.stable)).max(0);
    let mut grow = |now: i64, wanted: i64| {
        let next = if now < wanted { wanted.min(now + room) } else { now };
        room -= next - now;
        next
    };
    let canary = grow(wide(pods.canary), target);
    let stable = grow(wide(pods.stable), replicas - target);
    let mut spare = (wide(pods.canary_available) + wide(pods.stable_available) - (replicas - wide(unavailable))).max(0);
    let mut shrink = |now: i64, available: i64, wanted: i64| {
        if now <= wanted {
            return now;
        }
        let idle = (now - available).max(0);
        let next = wanted.max(now - idle - spare);
        spare -= (now - next - idle).max(0);
        next
    };
    let canary = shrink(canary, wide(pods.canary_available), target);
    let stable = shrink(stable, wide(pods.stable_available), replicas - target);
    let narrow = |n: i64| i32::try_from(n.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX);
    (narrow(canary), narrow(stable))
}

/// Plans the next move toward `target` new pods. Returns true once both
/// revisions are at their target and all their pods are available.
pub(super) fn toward(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, target: i32) -> bool {
    let Shape::Rolling { surge, unavailable } = steps.shape else {
        return true;
    };
    let Some(stable) = ctx.observed.revision(pair.stable).cloned() else {
        let message = format!(
            "the Deployment of stable revision {} is missing; no pods moved",
            pair.stable
        );
        ctx.note(false, reasons::STABLE_MISSING, message);
        ctx.requeue(ROUTE_MISSING_POLL);
        return false;
    };
    let canary = ctx.observed.revision(pair.canary).cloned().unwrap_or(RevisionState {
        revision: pair.canary.to_string(),
        replicas: 0,
        available_replicas: 0,
        current: true,
    });
    if !canary.current || !stable.current {
        // Availability describes an older size until the Deployment
        // controller catches up: moving on it could break the bounds.
        ctx.note(
            true,
            reasons::ROLLING_UPDATE,
            "waiting for the Deployments to observe their sizes".into(),
        );
        ctx.requeue(POLL);
        return false;
    }
    let pods = Pods {
        canary: canary.replicas,
        stable: stable.replicas,
        canary_available: canary.available_replicas.min(canary.replicas),
        stable_available: stable.available_replicas.min(stable.replicas),
    };
    let (canary_next, stable_next) = next_move(pods, steps.replicas, surge, unavailable, target);
    if canary_next != canary.replicas || ctx.observed.revision(pair.canary).is_none() {
        ctx.act(Action::Deploy {
            revision: pair.canary.to_string(),
            replicas: canary_next,
        });
    }
    if stable_next != stable.replicas {
        ctx.act(Action::Scale {
            revision: pair.stable.to_string(),
            replicas: stable_next,
        });
    }
    let target = target.clamp(0, steps.replicas);
    let there = canary.replicas == target
        && stable.replicas == steps.replicas - target
        && pods.canary_available >= canary.replicas
        && pods.stable_available >= stable.replicas;
    if !there {
        let message = format!(
            "rolling to {target}/{} new pods: {} new ({} available), {} old ({} available)",
            steps.replicas, canary.replicas, pods.canary_available, stable.replicas, pods.stable_available
        );
        ctx.note(true, reasons::ROLLING_UPDATE, message);
        ctx.requeue(POLL);
    }
    there
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the moves to the end, with pods becoming available one
    /// reconcile after they are asked for, and checks the bounds on every
    /// state in between.
    fn walk(replicas: i32, surge: i32, unavailable: i32, from: i32, target: i32) -> Vec<(i32, i32)> {
        let mut pods = Pods {
            canary: from,
            stable: replicas - from,
            canary_available: from,
            stable_available: replicas - from,
        };
        let mut seen = vec![(pods.canary, pods.stable)];
        for _ in 0..100 {
            let (canary, stable) = next_move(pods, replicas, surge, unavailable, target);
            // Scaling down takes pods away at once; new pods start unready.
            pods = Pods {
                canary,
                stable,
                canary_available: pods.canary_available.min(canary),
                stable_available: pods.stable_available.min(stable),
            };
            assert!(canary + stable <= replicas + surge, "too many pods: {pods:?}");
            let available = pods.canary_available + pods.stable_available;
            assert!(available >= replicas - unavailable, "too few available: {pods:?}");
            seen.push((canary, stable));
            // The next reconcile finds them ready.
            pods.canary_available = canary;
            pods.stable_available = stable;
            if (canary, stable) == (target, replicas - target) {
                return seen;
            }
        }
        panic!("never reached {target}: {seen:?}");
    }

    #[test]
    fn surge_one_over_five_moves_one_pod_at_a_time() {
        let seen = walk(5, 1, 0, 0, 5);
        assert_eq!(
            seen,
            [
                (0, 5),
                (1, 5),
                (1, 4),
                (2, 4),
                (2, 3),
                (3, 3),
                (3, 2),
                (4, 2),
                (4, 1),
                (5, 1),
                (5, 0)
            ]
        );
    }

    #[test]
    fn an_abort_half_way_moves_back_under_the_same_bounds() {
        let seen = walk(5, 1, 0, 3, 0);
        assert_eq!(seen.last(), Some(&(0, 5)));
    }

    #[test]
    fn without_surge_pods_go_before_new_ones_come() {
        let seen = walk(4, 0, 1, 0, 4);
        assert_eq!(seen[1], (0, 3));
        assert_eq!(seen.last(), Some(&(4, 0)));
    }

    #[test]
    fn large_bounds_move_in_few_batches() {
        let seen = walk(10, 5, 5, 0, 10);
        assert!(seen.len() <= 4, "{seen:?}");
    }
}
