//! The entry point: dispatches on where the rollout stands, and acts on
//! the outcomes its parts return. Only this module turns an outcome (a
//! regression, a failed gate, the last step passed) into an abort, a pause
//! or a promotion.

use jiff::Timestamp;

use crate::api::conditions::reasons;
use crate::api::{PauseReason, RolloutPhase, RolloutSpec, RolloutStatus};

use super::context::{ANALYSIS_POLL, Ctx, Pair, ROUTE_MISSING_POLL, Stop};
use super::decision::{EventKind, Plan};
use super::observed::{Observed, RouteState, TrafficSplit};
use super::progress::{self, Next};
use super::steps::{Shape, StepPlan, expand};
use super::{hooks, lifecycle, requests};

/// The step engine: from the spec, the last status and the observed world,
/// decides what to do now. Pure: no I/O, no clock but `now`.
///
/// Call it on every reconcile with `rollout.status.as_ref()`; apply
/// `actions` in order, write `status` if it differs, publish `events`, and
/// requeue after `requeue_after`.
pub fn plan(spec: &RolloutSpec, status: Option<&RolloutStatus>, observed: &Observed, now: Timestamp) -> Plan {
    let mut ctx = Ctx::new(spec, status, observed, now);
    ctx.status.observed_generation = observed.generation;
    ctx.status.selector = observed.pod_selector.clone();
    match expand(spec) {
        Err(errors) => {
            let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
            refuse(&mut ctx, reasons::INVALID_SPEC, &messages);
        }
        Ok(_) if !observed.not_adopted.is_empty() => {
            refuse(&mut ctx, reasons::ADOPTION_REQUIRED, &observed.not_adopted);
        }
        Ok(steps) => run(&mut ctx, &steps),
    }
    ctx.finish()
}

/// A spec the engine can't act on, or one that would take over objects
/// nobody handed to Siskin, freezes the rollout where it is: no traffic
/// moves and no pods change until it is fixed.
fn refuse(ctx: &mut Ctx, reason: &'static str, problems: &[String]) {
    let message = problems.join("; ");
    let was = ctx.status.phase;
    if was != Some(RolloutPhase::InvalidSpec) || ctx.status.message.as_deref() != Some(&message) {
        ctx.event(EventKind::Warning, reason, message.clone());
    }
    ctx.phase(RolloutPhase::InvalidSpec);
    ctx.note(false, reason, message);
}

fn run(ctx: &mut Ctx, steps: &StepPlan) {
    ctx.status.strategy = Some(steps.strategy.to_string());
    ctx.status.observed_canary_weight = observed_canary_weight(ctx, steps);
    let Some(desired) = ctx.observed.desired_revision.clone() else {
        ctx.note(
            false,
            reasons::POD_TEMPLATE_UNAVAILABLE,
            "waiting for the workloadRef Deployment to read its pod template".to_string(),
        );
        ctx.requeue(ROUTE_MISSING_POLL);
        return;
    };
    hooks::record_results(ctx);
    // A request is applied against the step index it names, so the index
    // must fit the current steps first: edited steps, or a status written
    // for another spec, would otherwise send a request past the end.
    progress::fit_index_to_steps(ctx, steps, &desired);
    requests::handle(ctx, steps, &desired);
    match ctx.status.stable_revision.clone() {
        None => lifecycle::first_revision(ctx, steps, &desired),
        Some(stable) if stable == desired => lifecycle::steady(ctx, steps, &stable),
        Some(stable) => {
            let pair = Pair {
                stable: &stable,
                canary: &desired,
            };
            if ctx.status.canary_revision.as_deref() != Some(desired.as_str()) {
                if lifecycle::start_canary(ctx, steps, pair) {
                    run_steps(ctx, steps, pair);
                }
            } else if ctx.status.abort.is_some() {
                lifecycle::hold_aborted(ctx, steps, pair);
            } else if ctx.observed.services.stable.as_deref() == Some(desired.as_str())
                && !steps.active_on_canary_at(ctx.current_index())
            {
                // Only a promotion points the stable Service at the canary.
                // Seeing it here means one was acted on but its status never
                // written (the controller stopped in between): finish it
                // rather than re-plan the last step, which would hand the
                // traffic back to the old revision and promote again.
                lifecycle::promote(ctx, steps, pair);
            } else {
                run_steps(ctx, steps, pair);
            }
        }
    }
    lifecycle::retire_old_revisions(ctx, steps, &desired);
    hooks::requeue_pending(ctx);
    // The analysis is evaluated when the Rollout is reconciled: while it
    // measures, reconcile at least every poll, so that a regression is
    // caught during a long minimum hold or an inconclusive pause too.
    if steps.measuring(&ctx.status).is_some() {
        ctx.requeue(ANALYSIS_POLL);
    }
}

/// Runs the canary's steps and acts on where they end.
fn run_steps(ctx: &mut Ctx, steps: &StepPlan, pair: Pair) {
    match progress::run(ctx, steps, pair) {
        Ok(Next::Wait) => {}
        Ok(Next::Promote) => lifecycle::promote(ctx, steps, pair),
        Err(Stop::Abort { reason, message }) => lifecycle::abort(ctx, steps, pair, reason, message),
        Err(Stop::Pause { reason, message }) => hold_paused(ctx, reason, message),
    }
}

/// A gate that needs a human: the canary holds where it is, traffic
/// unchanged, until `siskin resume`, `promote` or `abort`.
fn hold_paused(ctx: &mut Ctx, reason: PauseReason, message: String) {
    let (event, hint) = match reason {
        PauseReason::Inconclusive => ("AnalysisInconclusive", "paused"),
        _ => ("Paused", "`siskin resume` calls it again"),
    };
    let now = ctx.now_time();
    if ctx.pause(reason, now) {
        ctx.event(EventKind::Warning, event, message.clone());
    }
    ctx.phase(RolloutPhase::Paused);
    ctx.note(false, reasons::PAUSED, format!("{message}; {hint}"));
}

/// The canary's share as users get it: from the route once the data plane
/// has accepted it (until then users still get the previous one), otherwise
/// from the available pods of the two revisions.
fn observed_canary_weight(ctx: &Ctx, steps: &StepPlan) -> Option<i32> {
    if steps.shape == Shape::BlueGreen && !steps.routed {
        let switched = ctx.status.canary_revision.is_some()
            && ctx.observed.services.stable.as_ref() == ctx.status.canary_revision.as_ref();
        return Some(if switched { 100 } else { 0 });
    }
    if steps.routed {
        return match &ctx.observed.route {
            Some(RouteState::Present { accepted: false, .. }) => ctx.status.observed_canary_weight,
            _ => ctx.observed.split().and_then(|s| s.canary_share()),
        };
    }
    let available = |revision: Option<&String>| {
        revision
            .and_then(|r| ctx.observed.revision(r))
            .map_or(0, |r| r.available_replicas)
    };
    let canary = available(ctx.status.canary_revision.as_ref());
    let stable = available(ctx.status.stable_revision.as_ref());
    TrafficSplit { stable, canary }.canary_share()
}
