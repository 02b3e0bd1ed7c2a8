//! The moments around the steps: the first revision, a new canary, the
//! promotion, the abort, the steady state, and retiring old revisions.

use crate::api::conditions::reasons;
use crate::api::{AbortReason, RolloutPhase, ScheduledScaleDown, WebhookType};

use super::context::{Ctx, POLL, Pair, route_name};
use super::decision::{Action, EventKind};
use super::observed::{RouteState, TrafficSplit};
use super::queue::QueuePlace;
use super::rolling;
use super::steps::{Shape, StepPlan};

/// No stable revision yet: the first one is simply deployed and becomes
/// stable; there is nothing to compare a canary with.
pub(super) fn first_revision(ctx: &mut Ctx, steps: &StepPlan, desired: &str) {
    ctx.phase(RolloutPhase::Pending);
    let state = ctx.observed.revision(desired).cloned();
    if state.as_ref().map(|s| s.replicas) != Some(steps.replicas) {
        ctx.act(Action::Deploy {
            revision: desired.to_string(),
            replicas: steps.replicas,
        });
    }
    let available = state.as_ref().map_or(0, |s| s.available_replicas);
    if !state.is_some_and(|s| s.is_available_at(steps.replicas)) {
        let message = format!(
            "starting revision {desired}: {available}/{} pods available",
            steps.replicas
        );
        ctx.note(true, reasons::FIRST_REVISION, message);
        ctx.requeue(POLL);
        return;
    }
    ctx.status.stable_revision = Some(desired.to_string());
    let message = format!("revision {desired} is the first stable revision");
    ctx.event(EventKind::Normal, "FirstRevision", message);
    steady(ctx, steps, desired);
}

/// One revision serves everything: keep it that way (pods, Services,
/// weights 100/0) and hand the workloadRef's traffic over to it.
pub(super) fn steady(ctx: &mut Ctx, steps: &StepPlan, stable: &str) {
    if walking_back(ctx, steps, stable) {
        let message = format!("the spec is back at stable {stable}: walking the canary's pods back first");
        ctx.note(true, reasons::RESTARTING_FROM_STABLE, message);
        return;
    }
    ctx.phase(RolloutPhase::Healthy);
    if let Some(canary) = ctx.status.canary_revision.take() {
        let message = format!("the spec is back at stable {stable}; dropped canary {canary}");
        ctx.event(EventKind::Normal, "CanaryDropped", message);
    }
    ctx.forget_canary();
    let state = ctx.observed.revision(stable).cloned();
    if state.as_ref().map(|s| s.replicas) != Some(steps.replicas) {
        ctx.act(Action::Deploy {
            revision: stable.to_string(),
            replicas: steps.replicas,
        });
    }
    let pods_ready = state.is_some_and(|s| s.is_available_at(steps.replicas));
    let selected = &ctx.observed.services;
    let services_ready = selected.stable.as_deref() == Some(stable) && selected.canary.as_deref() == Some(stable);
    if !services_ready {
        ctx.act(Action::SelectRevisions {
            stable: stable.to_string(),
            canary: stable.to_string(),
        });
    }
    let route_ready = !steps.routed || all_stable_on_route(ctx);
    if pods_ready && ctx.observed.workload_ref_replicas.is_some_and(|r| r > 0) {
        ctx.act(Action::ScaleDownWorkloadRef);
    }
    ctx.healthy = pods_ready && services_ready && route_ready;
    if ctx.healthy {
        ctx.note(false, reasons::STABLE, format!("revision {stable} serves all traffic"));
    } else if !pods_ready {
        let message = format!("waiting for stable revision {stable} to be fully available");
        ctx.note(false, reasons::WAITING_FOR_STABLE, message);
        ctx.requeue(POLL);
    } else if route_ready {
        ctx.note(
            false,
            reasons::SELECTING_REVISIONS,
            "pointing both Services at stable".into(),
        );
        ctx.requeue(POLL);
    }
}

/// Keeps the route at 100/0 with nothing of Siskin's on it, writing it if
/// needed. Returns whether it is there and accepted; notes why not.
fn all_stable_on_route(ctx: &mut Ctx) -> bool {
    match ctx.observed.route.clone() {
        Some(RouteState::Present { accepted, .. }) => {
            if ctx.clear_canary_traffic() {
                ctx.note(
                    false,
                    reasons::SHIFTING_TRAFFIC,
                    "returning all traffic to stable".into(),
                );
                ctx.requeue(POLL);
                return false;
            }
            if !accepted {
                let message = "waiting for the data plane to accept 100% stable";
                ctx.note(false, reasons::AWAITING_DATA_PLANE, message.into());
                ctx.requeue(POLL);
            }
            accepted
        }
        Some(RouteState::MissingBackends { message }) => {
            let message = format!("{}: {message}", route_name(ctx.spec));
            ctx.note(false, reasons::ROUTE_MISSING_BACKENDS, message);
            false
        }
        None | Some(RouteState::NotFound) => {
            let message = format!("{} not found", route_name(ctx.spec));
            ctx.note(false, reasons::ROUTE_NOT_FOUND, message);
            false
        }
    }
}

/// A new revision appeared. If another canary was taking traffic, that
/// traffic returns to stable first and the steps start over on the next
/// reconcile; otherwise returns true: the first step starts now.
pub(super) fn start_canary(ctx: &mut Ctx, steps: &StepPlan, pair: Pair) -> bool {
    if walking_back(ctx, steps, pair.stable) {
        let message = format!(
            "revision {} waits: the previous canary's pods go back to stable {} first",
            pair.canary, pair.stable
        );
        ctx.note(true, reasons::RESTARTING_FROM_STABLE, message);
        return false;
    }
    if let Some(place) = ctx.observed.queue.clone() {
        wait_in_queue(ctx, steps, pair, &place);
        return false;
    }
    let previous = ctx.status.canary_revision.replace(pair.canary.to_string());
    ctx.begin_steps();
    ctx.status.queued_since = None;
    ctx.status.steps_hash = Some(steps.hash.clone());
    ctx.status.canary_weight = Some(0);
    let Some(previous) = previous else {
        let message = format!("rolling out {}; stable is {}", pair.canary, pair.stable);
        ctx.event(EventKind::Normal, "NewRevision", message);
        return true;
    };
    let message = format!(
        "revision {} replaces canary {previous}; restarting from stable {}",
        pair.canary, pair.stable
    );
    ctx.event(EventKind::Normal, "RevisionSuperseded", message.clone());
    ctx.phase(RolloutPhase::Progressing);
    if steps.shape == Shape::BlueGreen && !steps.routed {
        // A switched green still serves through the stable Service: point
        // it back at blue first; green then retires like any revision
        // without traffic.
        if ctx.observed.services.stable.as_deref() != Some(pair.stable) {
            ctx.act(Action::SelectStable {
                revision: pair.stable.to_string(),
            });
        }
    } else if !steps.routed {
        // Without a router the old canary's pods are its traffic.
        if ctx.observed.revision(&previous).is_some_and(|r| r.replicas > 0) {
            ctx.act(Action::Scale {
                revision: previous,
                replicas: 0,
            });
        }
    } else {
        ctx.clear_canary_traffic();
    }
    ctx.note(true, reasons::RESTARTING_FROM_STABLE, message);
    ctx.requeue(POLL);
    false
}

/// Every rollout slot of the cluster is taken: the new revision waits
/// before its first step while stable keeps serving everything, and starts
/// on a later reconcile once a slot is its own.
fn wait_in_queue(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, place: &QueuePlace) {
    let since = ctx.status.queued_since.take();
    steady(ctx, steps, pair.stable);
    ctx.phase(RolloutPhase::Queued);
    let message = format!(
        "revision {} waits for a rollout slot: {} of at most {} rollouts are in progress; place {} in the queue",
        pair.canary, place.in_progress, place.cap, place.position
    );
    if since.is_none() {
        ctx.event(EventKind::Normal, "Queued", message.clone());
    }
    ctx.status.queued_since = Some(since.unwrap_or_else(|| ctx.now_time()));
    ctx.note(true, reasons::QUEUED, message);
    ctx.requeue(POLL);
}

/// A rolling update whose canary is no longer wanted (superseded by a newer
/// revision, or the spec went back to stable) still has pods mixed with
/// stable's: they go back in the same bounded moves as an abort before
/// anything else happens. Returns whether that walk is under way.
fn walking_back(ctx: &mut Ctx, steps: &StepPlan, stable: &str) -> bool {
    if !matches!(steps.shape, Shape::Rolling { .. }) {
        return false;
    }
    let Some(canary) = ctx.status.canary_revision.clone() else {
        return false;
    };
    let has_pods = ctx.observed.revision(&canary).is_some_and(|r| r.replicas > 0);
    if canary == stable || !has_pods {
        return false;
    }
    ctx.phase(RolloutPhase::Progressing);
    let back = Pair {
        stable,
        canary: &canary,
    };
    !rolling::toward(ctx, steps, back, 0)
}

/// Rolls back: all traffic to stable in one route write, now.
pub(super) fn abort(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, reason: AbortReason, message: String) {
    ctx.mark_aborted(reason, message);
    hold_aborted(ctx, steps, pair);
}

/// An aborted canary stays aborted (traffic on stable, canary scaled down)
/// until `siskin retry` or a new revision.
pub(super) fn hold_aborted(ctx: &mut Ctx, steps: &StepPlan, pair: Pair) {
    ctx.phase(RolloutPhase::Aborted);
    ctx.status.canary_weight = Some(0);
    if let Shape::Rolling { .. } = steps.shape {
        // Back to the old revision at full size, in the same bounded moves
        // as forward; the note below says why.
        rolling::toward(ctx, steps, pair, 0);
    } else if steps.shape == Shape::BlueGreen && !steps.routed {
        // The rollback is the stable Service's selector, one write. Green
        // keeps its pods for the scale-down delay, like any revision that
        // stops receiving traffic.
        if ctx.observed.services.stable.as_deref() != Some(pair.stable) {
            ctx.act(Action::SelectStable {
                revision: pair.stable.to_string(),
            });
            ctx.requeue(POLL);
        }
    } else if steps.routed {
        ctx.clear_canary_traffic();
    } else if ctx.observed.revision(pair.canary).is_some_and(|c| c.replicas > 0) {
        // Without a router the canary's pods are its traffic: remove them
        // now rather than after the scale-down delay.
        ctx.act(Action::Scale {
            revision: pair.canary.to_string(),
            replicas: 0,
        });
    }
    let stable_replicas = ctx.observed.revision(pair.stable).map(|s| s.replicas);
    let rolling = matches!(steps.shape, Shape::Rolling { .. });
    if !rolling && stable_replicas.is_some_and(|r| r != steps.replicas) {
        ctx.act(Action::Scale {
            revision: pair.stable.to_string(),
            replicas: steps.replicas,
        });
    }
    let why = ctx
        .status
        .abort
        .as_ref()
        .map_or_else(String::new, |a| a.message.clone());
    let message = format!("aborted: {why}; `siskin retry` or a new revision continues");
    ctx.note(false, reasons::ABORTED, message);
}

/// All steps passed: the canary grows to full size, then its pods become
/// stable by moving the stable Service's selector. Nothing is re-deployed.
pub(super) fn promote(ctx: &mut Ctx, steps: &StepPlan, pair: Pair) {
    ctx.phase(RolloutPhase::Promoting);
    ctx.status.pause = None;
    if matches!(steps.shape, Shape::Rolling { .. }) && !rolling::toward(ctx, steps, pair, steps.replicas) {
        return;
    }
    let canary = ctx.observed.revision(pair.canary).cloned();
    if !canary.as_ref().is_some_and(|c| c.is_available_at(steps.replicas)) {
        if canary.as_ref().map(|c| c.replicas) != Some(steps.replicas) {
            ctx.act(Action::Deploy {
                revision: pair.canary.to_string(),
                replicas: steps.replicas,
            });
        }
        let available = canary.map_or(0, |c| c.available_replicas);
        let message = format!(
            "promoting {}: {available}/{} pods available",
            pair.canary, steps.replicas
        );
        ctx.note(true, reasons::PROMOTING, message);
        ctx.requeue(POLL);
        return;
    }
    ctx.act(Action::SelectRevisions {
        stable: pair.canary.to_string(),
        canary: pair.canary.to_string(),
    });
    if !steps.routed {
        // Without a router the old revision's pods are its traffic: behind
        // the one Service they would keep half of it for the whole delay.
        // Pod termination drains their in-flight requests instead.
        ctx.act(Action::Scale {
            revision: pair.stable.to_string(),
            replicas: 0,
        });
    } else {
        // Weights first: with them at 100/0 the match rule is the only
        // traffic the promoted revision gets from the old canary path.
        ctx.clear_canary_traffic();
    }
    ctx.status.stable_revision = Some(pair.canary.to_string());
    ctx.notify(WebhookType::PostRollout, pair.canary);
    ctx.forget_canary();
    ctx.phase(RolloutPhase::Healthy);
    let message = format!("{} promoted to stable; {} retires", pair.canary, pair.stable);
    ctx.event(EventKind::Normal, "Promoted", message.clone());
    ctx.note(false, reasons::PROMOTED, message);
    ctx.requeue(POLL);
}

/// Scales down revisions that no longer receive traffic, `scaleDownDelay`
/// after they stopped, and only while the stable revision is fully
/// available (so a rollback target is never removed under load).
pub(super) fn retire_old_revisions(ctx: &mut Ctx, steps: &StepPlan, desired: &str) {
    let stable = ctx.status.stable_revision.clone();
    // An aborted rolling update's new pods leave in bounded moves, not all
    // at once after a delay.
    let canary_live = ctx.status.abort.is_none() || matches!(steps.shape, Shape::Rolling { .. });
    let live = |revision: &str| {
        stable.as_deref() == Some(revision)
            || (stable.is_none() && revision == desired)
            || (canary_live && ctx.status.canary_revision.as_deref() == Some(revision))
    };
    let retiring: Vec<String> = ctx
        .observed
        .revisions
        .iter()
        .filter(|r| r.replicas > 0 && !live(&r.revision))
        .map(|r| r.revision.clone())
        .collect();
    ctx.status.scale_downs.retain(|s| retiring.contains(&s.revision));
    let stable_ready = stable
        .as_deref()
        .and_then(|s| ctx.observed.revision(s))
        .is_some_and(|s| s.available_replicas >= s.replicas && s.current);
    for revision in retiring {
        if ctx.scales(&revision) {
            continue;
        }
        retire(ctx, steps, revision, stable_ready);
    }
}

fn retire(ctx: &mut Ctx, steps: &StepPlan, revision: String, stable_ready: bool) {
    let due = ctx
        .status
        .scale_downs
        .iter()
        .find(|s| s.revision == revision)
        .map(|s| s.at.0);
    let Some(due) = due else {
        let at = ctx.in_future(steps.retire_delay());
        ctx.status.scale_downs.push(ScheduledScaleDown {
            revision,
            at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at),
        });
        ctx.requeue(steps.retire_delay());
        return;
    };
    if due > ctx.now {
        ctx.requeue(ctx.elapsed_until(due));
        return;
    }
    if !stable_ready || carries_traffic(ctx, steps, &revision) {
        ctx.requeue(POLL);
        return;
    }
    ctx.status.scale_downs.retain(|s| s.revision != revision);
    // No Event of our own: the Deployment's controller publishes one on the
    // Deployment for every scale, and this one would cost an API write.
    ctx.act(Action::Scale { revision, replicas: 0 });
}

/// Whether a routed Service still sends users to this revision (e.g. a
/// route write that keeps failing): its pods stay until that stops.
fn carries_traffic(ctx: &Ctx, steps: &StepPlan, revision: &str) -> bool {
    let selected = &ctx.observed.services;
    if selected.stable.as_deref() == Some(revision) && (steps.routed || steps.shape == Shape::BlueGreen) {
        return true;
    }
    if !steps.routed {
        return false;
    }
    let canary_selects = selected.canary.as_deref() == Some(revision);
    let route_sends_canary_traffic = match &ctx.observed.route {
        Some(RouteState::Present {
            split,
            accepted,
            matches,
            mirror,
        }) => *split != Some(TrafficSplit::ALL_STABLE) || !accepted || matches.is_some() || mirror.is_some(),
        _ => false,
    };
    canary_selects && route_sends_canary_traffic
}
