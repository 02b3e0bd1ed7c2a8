//! Putting a weight in place, in the only safe order: canary pods ready,
//! Services selecting the right revisions, then one route write, then the
//! data plane's acceptance.

use crate::api::conditions::reasons;
use crate::api::{RequestMatch, WebhookType};

use super::context::{Ctx, POLL, Pair, ROUTE_MISSING_POLL, Stop, describe_matches, route_name};
use super::decision::{Action, EventKind};
use super::hooks;
use super::observed::{RouteState, TrafficSplit};
use super::rolling;
use super::steps::{Shape, Step, StepPlan};

/// Returns true once the traffic of step `index` (its weight, plus the
/// requests with its matches, or its share of the pods) reaches the canary
/// and the data plane has accepted it; otherwise plans the next move and
/// waits. A webhook gate that failed for good stops the step.
pub(super) fn ensure(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, index: usize) -> Result<bool, Stop> {
    let weight = steps.weight_at(index);
    let active = if steps.active_on_canary_at(index) {
        pair.canary
    } else {
        pair.stable
    };
    let ready = match steps.shape {
        // A rolling update's traffic is its pods: the gates come first.
        Shape::Rolling { .. } => {
            gates(ctx, steps, pair, index)?
                && rolling::toward(ctx, steps, pair, steps.batch_at(index))
                && services(ctx, steps, pair, active)
        }
        Shape::Canary | Shape::BlueGreen => {
            let canary = canary_pods(ctx, steps, pair, weight);
            // Stable's size waits for the canary's pods only where it sets
            // the split and shrinks: with a router, or when it grows (an
            // autoscaler scaling up mid-canary), it never takes capacity
            // from users, so both revisions resize at once.
            let stable_grows = ctx
                .observed
                .revision(pair.stable)
                .is_some_and(|s| s.replicas < steps.stable_replicas(weight));
            let stable = (canary || steps.routed || stable_grows) && stable_pods(ctx, steps, pair, weight);
            canary && stable && services(ctx, steps, pair, active) && gates(ctx, steps, pair, index)?
        }
    };
    Ok(ready
        && route_mirror(ctx, steps, steps.mirror_at(index))
        && route_weights(ctx, steps, weight)
        && route_matches(ctx, steps, steps.matches_at(index)))
}

/// Keeps both revisions at step `index`'s sizes while the step is held by
/// a human or a failed gate (a manual, inconclusive or webhook pause), so
/// that an autoscaler's `spec.replicas` still reaches the pods. Traffic
/// does not move.
pub(super) fn follow_scale(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, index: usize) {
    if matches!(steps.shape, Shape::Canary | Shape::BlueGreen) {
        let weight = steps.weight_at(index);
        if canary_pods(ctx, steps, pair, weight) || steps.routed {
            stable_pods(ctx, steps, pair, weight);
        }
    }
}

/// The webhooks that must pass before step `index` moves traffic: the
/// pre-rollout ones before the first, the rollout ones before each, and
/// the confirm-promotion ones before a blue/green switch.
fn gates(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, index: usize) -> Result<bool, Stop> {
    let step = i32::try_from(index).ok();
    let switch = matches!(steps.steps.get(index), Some(Step::Switch { .. }));
    Ok((index > 0 || hooks::gate(ctx, pair, WebhookType::PreRollout, None)?)
        && hooks::gate(ctx, pair, WebhookType::Rollout, step)?
        && (!switch || hooks::gate(ctx, pair, WebhookType::ConfirmPromotion, None)?))
}

fn canary_pods(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, weight: i32) -> bool {
    let wanted = steps.canary_replicas(weight);
    let Some(canary) = ctx.observed.revision(pair.canary).cloned() else {
        ctx.act(Action::Deploy {
            revision: pair.canary.to_string(),
            replicas: wanted,
        });
        let message = format!("starting canary {} with {wanted} pods", pair.canary);
        ctx.note(true, reasons::STARTING_CANARY, message);
        ctx.requeue(POLL);
        return false;
    };
    // Fewer canary pods only once the route sends them no more than the new
    // weight (e.g. after steps were edited to lower weights).
    let may_shrink = !steps.routed
        || ctx
            .observed
            .split()
            .and_then(|s| s.canary_share())
            .is_some_and(|share| share <= weight);
    let target = if canary.replicas > wanted && !may_shrink {
        canary.replicas
    } else {
        wanted
    };
    if canary.replicas != target {
        ctx.act(Action::Deploy {
            revision: pair.canary.to_string(),
            replicas: target,
        });
    }
    if canary.is_available_at(target) {
        return true;
    }
    let message = format!(
        "waiting for canary {}: {}/{target} pods available",
        pair.canary, canary.available_replicas
    );
    ctx.note(true, reasons::WAITING_FOR_CANARY, message);
    ctx.requeue(POLL);
    false
}

fn stable_pods(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, weight: i32) -> bool {
    let wanted = steps.stable_replicas(weight);
    let Some(stable) = ctx.observed.revision(pair.stable) else {
        let message = format!(
            "the Deployment of stable revision {} is missing; no traffic moved",
            pair.stable
        );
        ctx.note(false, reasons::STABLE_MISSING, message);
        ctx.requeue(ROUTE_MISSING_POLL);
        return false;
    };
    if stable.replicas == wanted {
        return true;
    }
    ctx.act(Action::Scale {
        revision: pair.stable.to_string(),
        replicas: wanted,
    });
    // With a router the stable's size does not set the split; without one,
    // the split is the replica ratio and is only right once it has shrunk.
    if steps.routed {
        return true;
    }
    let message = format!("scaling stable {} to {wanted} pods", pair.stable);
    ctx.note(true, reasons::SCALING_STABLE, message);
    ctx.requeue(POLL);
    false
}

/// Points the canary Service at the canary and the stable Service at
/// `active`: the stable revision, or, once a blue/green rollout without a
/// router switches, the canary.
fn services(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, active: &str) -> bool {
    let selected = &ctx.observed.services;
    let stable_ok = selected.stable.as_deref() == Some(active);
    let canary_ok = selected.canary.as_deref() == Some(pair.canary);
    if stable_ok && canary_ok {
        return true;
    }
    if canary_ok {
        // One write: the blue/green switch, or putting stable back.
        ctx.act(Action::SelectStable {
            revision: active.to_string(),
        });
        if active == pair.canary {
            let message = format!("all traffic switched to {}", pair.canary);
            ctx.event(EventKind::Normal, "TrafficSwitched", message);
        }
        let message = format!("pointing the stable Service at {active}");
        ctx.note(true, reasons::SELECTING_REVISIONS, message);
        ctx.requeue(POLL);
        return false;
    }
    // Re-pointing the canary Service while it carries traffic would send
    // that traffic to pods nobody has judged: take the traffic back first.
    if steps.routed && ctx.clear_canary_traffic() {
        let message = "returning canary traffic to stable before switching the canary Service";
        ctx.note(true, reasons::CLEARING_CANARY_TRAFFIC, message.to_string());
        ctx.requeue(POLL);
        return false;
    }
    ctx.act(Action::SelectRevisions {
        stable: active.to_string(),
        canary: pair.canary.to_string(),
    });
    let message = format!(
        "pointing the stable Service at {active} and the canary Service at {}",
        pair.canary
    );
    ctx.note(true, reasons::SELECTING_REVISIONS, message);
    ctx.requeue(POLL);
    false
}

fn route_weights(ctx: &mut Ctx, steps: &StepPlan, weight: i32) -> bool {
    let weight_changed = ctx.status.canary_weight != Some(weight);
    ctx.status.canary_weight = Some(weight);
    if !steps.routed {
        return true;
    }
    let wanted = TrafficSplit::canary_percent(weight);
    match ctx.observed.route.clone() {
        None | Some(RouteState::NotFound) => {
            let message = format!("{} not found; no traffic moved", route_name(ctx.spec));
            ctx.note(false, reasons::ROUTE_NOT_FOUND, message);
            ctx.requeue(ROUTE_MISSING_POLL);
            false
        }
        Some(RouteState::MissingBackends { message }) => {
            let message = format!("{}: {message}; no traffic moved", route_name(ctx.spec));
            ctx.note(false, reasons::ROUTE_MISSING_BACKENDS, message);
            ctx.requeue(ROUTE_MISSING_POLL);
            false
        }
        Some(RouteState::Present { split, .. }) if split != Some(wanted) => {
            ctx.act(Action::SetWeights(wanted));
            ctx.start_hold();
            // The step completed in this plan tells of the move already (the
            // next step's label names its weight): one Event, one API write.
            if weight_changed && !ctx.tells("StepCompleted") {
                let message = format!("canary weight {weight}");
                ctx.event(EventKind::Normal, "TrafficShifted", message);
            }
            shifting(ctx, weight);
            false
        }
        Some(RouteState::Present { accepted: false, .. }) => {
            shifting(ctx, weight);
            false
        }
        Some(RouteState::Present { .. }) => true,
    }
}

/// One note from the route write until the data plane accepts it, so the
/// reconcile that follows the write has no status to write.
fn shifting(ctx: &mut Ctx, weight: i32) {
    let message = format!(
        "canary weight {weight} on {}: waiting for the data plane to accept it",
        route_name(ctx.spec)
    );
    ctx.note(true, reasons::SHIFTING_TRAFFIC, message);
    ctx.requeue(POLL);
}

/// Starts or stops mirroring as the step wants, before any weight moves: a
/// canary never gets a copy of traffic besides its own share. Runs before
/// `route_weights`, which reports a missing route.
fn route_mirror(ctx: &mut Ctx, steps: &StepPlan, wanted: Option<i32>) -> bool {
    if !steps.routed || !matches!(ctx.observed.route, Some(RouteState::Present { .. })) {
        return true;
    }
    if ctx.observed.mirror() == wanted {
        return true;
    }
    ctx.act(Action::SetMirror(wanted));
    ctx.start_hold();
    let message = match wanted {
        Some(percent) => {
            let message = format!("mirroring {percent}% of traffic to the canary");
            ctx.event(EventKind::Normal, "TrafficMirrored", message.clone());
            message
        }
        None => "stopping the mirror to the canary".to_string(),
    };
    ctx.note(true, reasons::SHIFTING_TRAFFIC, message);
    ctx.requeue(POLL);
    false
}

/// Puts Siskin's match rule on the route as the step wants it (or takes it
/// off), then waits for the data plane to accept that generation. Runs
/// after `route_weights`, which has already seen the route present.
fn route_matches(ctx: &mut Ctx, steps: &StepPlan, wanted: Option<&[RequestMatch]>) -> bool {
    if !steps.routed {
        return true;
    }
    let observed = match &ctx.observed.route {
        Some(RouteState::Present { matches, .. }) => matches.as_deref(),
        _ => return true,
    };
    if RequestMatch::same(observed, wanted) {
        return true;
    }
    ctx.act(Action::SetMatches(wanted.map(<[_]>::to_vec)));
    ctx.start_hold();
    let message = match wanted {
        Some(m) => {
            let described = describe_matches(m);
            ctx.event(
                EventKind::Normal,
                "TrafficShifted",
                format!("requests matching {described} go to the canary"),
            );
            format!("sending requests matching {described} to the canary")
        }
        None => "removing the canary's request-match rule".to_string(),
    };
    ctx.note(true, reasons::SHIFTING_TRAFFIC, message);
    ctx.requeue(POLL);
    false
}
