//! A canary moving through its steps: weights, holds, pauses and the
//! analysis gate at the end of each hold.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::analysis::Verdict;
use crate::api::conditions::reasons;
use crate::api::{AbortReason, InconclusivePolicy, PauseReason, RolloutPhase, WebhookType};

use super::context::{ANALYSIS_POLL, Ctx, Pair, Stop, step_label};
use super::decision::EventKind;
use super::hooks;
use super::steps::{Shape, Step, StepPlan};
use super::traffic;

/// Where the steps stand after this reconcile, when they did not stop.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// A step holds, or the world is catching up with it.
    Wait,
    /// Every step passed: the engine promotes.
    Promote,
}

/// Whether a held step may end.
enum Gate {
    Wait,
    Advance,
}

/// Runs the current step; when it completes, goes straight on to the next
/// so that advancing and moving traffic share one reconcile. A regression,
/// a failed gate or an inconclusive analysis comes back as a [`Stop`].
pub(super) fn run(ctx: &mut Ctx, steps: &StepPlan, pair: Pair) -> Result<Next, Stop> {
    if steps.analysis.is_some() {
        ctx.status.verdict = ctx.observed.verdict;
        if ctx.observed.verdict == Some(Verdict::Regression) {
            return Err(regression(pair));
        }
    }
    if let Some(pause) = &ctx.status.pause
        && pause.reason != PauseReason::PauseStep
    {
        let message = match pause.reason {
            PauseReason::Manual => "paused by request; `siskin resume` continues".to_string(),
            PauseReason::Webhook => "paused: a webhook failed; `siskin resume` calls it again".to_string(),
            _ => "paused: the analysis is inconclusive; `siskin resume`, `promote` or `abort`".to_string(),
        };
        let index = ctx.current_index();
        traffic::follow_scale(ctx, steps, pair, index);
        ctx.phase(RolloutPhase::Paused);
        ctx.note(false, reasons::PAUSED, message);
        return Ok(Next::Wait);
    }
    // Each pass either waits or completes one step, so this is bounded.
    for _ in 0..=steps.steps.len() {
        let index = ctx.current_index();
        if index >= steps.steps.len() {
            // Blue/green confirmed before its switch, which was the promotion.
            let confirmed =
                steps.shape == Shape::BlueGreen || hooks::gate(ctx, pair, WebhookType::ConfirmPromotion, None)?;
            return Ok(if confirmed { Next::Promote } else { Next::Wait });
        }
        match run_step(ctx, steps, pair, index)? {
            Gate::Wait => return Ok(Next::Wait),
            Gate::Advance => ctx.complete_step(steps, index),
        }
    }
    Ok(Next::Wait)
}

fn regression(pair: Pair) -> Stop {
    Stop::Abort {
        reason: AbortReason::Regression,
        message: format!("the analysis found canary {} worse than stable", pair.canary),
    }
}

/// Makes the stored step index one the current steps have, before anything
/// reads it. Only an in-flight canary has an index that matters; there,
/// edited steps start again from the first, and an index past the end (a
/// status written for another spec, or by hand) is not trusted to mean
/// "promote": it starts again from the first too.
pub(super) fn fit_index_to_steps(ctx: &mut Ctx, steps: &StepPlan, desired: &str) {
    let in_flight = ctx.status.stable_revision.as_deref().is_some_and(|s| s != desired)
        && ctx.status.canary_revision.as_deref() == Some(desired);
    if !in_flight {
        return;
    }
    restart_if_steps_changed(ctx, steps);
    let beyond = ctx
        .status
        .current_step_index
        .is_some_and(|i| usize::try_from(i).map_or(true, |i| i > steps.steps.len()));
    if beyond {
        ctx.enter_step(0);
        ctx.event(
            EventKind::Warning,
            "StepIndexReset",
            "the recorded step does not exist in the current steps; starting them again from the first".to_string(),
        );
    }
}

/// Edited steps make the stored index meaningless: start them again from
/// the first, at whatever traffic the route has now.
fn restart_if_steps_changed(ctx: &mut Ctx, steps: &StepPlan) {
    let changed = ctx.status.steps_hash.as_ref().is_some_and(|h| *h != steps.hash);
    if changed {
        ctx.enter_step(0);
        ctx.event(
            EventKind::Normal,
            "StepsChanged",
            "the steps changed mid-rollout; starting them again from the first".to_string(),
        );
    }
    ctx.status.steps_hash = Some(steps.hash.clone());
}

fn run_step(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, index: usize) -> Result<Gate, Stop> {
    let weight = steps.weight_at(index);
    let Some(step) = steps.steps.get(index).cloned() else {
        return Ok(Gate::Advance);
    };
    if !matches!(step, Step::Pause { duration: None }) {
        ctx.status.pause = None;
    }
    ctx.phase(RolloutPhase::Progressing);
    if !traffic::ensure(ctx, steps, pair, index)? {
        return Ok(Gate::Wait);
    }
    // The hold counts from the plan that wrote the step's traffic onto the
    // route (see `Ctx::start_hold`), recorded in the same status write as the
    // step itself, and the step cannot pass before the data plane accepted
    // it. A step whose traffic was already in place starts its hold here.
    let started = match &ctx.status.step_started_at {
        Some(t) => t.0,
        None => ctx.start_hold(),
    };
    let label = step_label(steps, index, weight);
    match step {
        Step::Weight { min, max, .. } | Step::Match { min, max, .. } | Step::Mirror { min, max, .. } => {
            gate(ctx, steps.analysis, pair, &label, started, (min, max))
        }
        // A rolling update's analysis runs in the background: a regression
        // aborts at any batch (see `run`), but only the last batch, the one
        // before the promotion, waits for a non-inferior verdict. Waiting
        // for evidence at every batch would hold mixed versions for long.
        Step::Batch { min, max, .. } if index + 1 < steps.steps.len() => {
            gate(ctx, None, pair, &label, started, (min, max))
        }
        Step::Batch { min, max, .. } => gate(ctx, steps.analysis, pair, &label, started, (min, max)),
        Step::Switch { window } => {
            let elapsed = ctx.elapsed_since(started);
            if elapsed >= window {
                return Ok(Gate::Advance);
            }
            let until = started.saturating_add(window).unwrap_or(Timestamp::MAX);
            let message = format!(
                "{label}: all traffic on {}; {} stays up for a rollback until {until}",
                pair.canary, pair.stable
            );
            ctx.note(true, reasons::SWITCHED, message);
            ctx.requeue(window - elapsed);
            Ok(Gate::Wait)
        }
        Step::Pause {
            duration: Some(duration),
        } => gate(ctx, steps.analysis, pair, &label, started, (duration, Some(duration))),
        Step::Pause { duration: None } => {
            if ctx.pause(PauseReason::PauseStep, Time(started)) {
                ctx.event(EventKind::Normal, "Paused", format!("{label}: waiting for promote"));
            }
            ctx.phase(RolloutPhase::Paused);
            ctx.note(
                false,
                reasons::PAUSE_STEP,
                format!("{label}: waiting for `siskin promote`"),
            );
            Ok(Gate::Wait)
        }
    }
}

/// Decides whether a held step may advance. Without analysis the minimum
/// hold is enough. With analysis only `NonInferior` advances; anything else
/// waits until `max`, and then the inconclusive policy applies, because
/// missing evidence is never a pass.
fn gate(
    ctx: &mut Ctx,
    analysis: Option<InconclusivePolicy>,
    pair: Pair,
    label: &str,
    started: Timestamp,
    (min, max): (Duration, Option<Duration>),
) -> Result<Gate, Stop> {
    let elapsed = ctx.elapsed_since(started);
    if elapsed < min {
        let until = started.saturating_add(min).unwrap_or(Timestamp::MAX);
        ctx.note(true, reasons::HOLDING, format!("{label}: holding until {until}"));
        ctx.requeue(min - elapsed);
        return Ok(Gate::Wait);
    }
    let Some(policy) = analysis else {
        return Ok(Gate::Advance);
    };
    match ctx.observed.verdict {
        Some(Verdict::NonInferior) => Ok(Gate::Advance),
        Some(Verdict::Regression) => Err(regression(pair)),
        Some(Verdict::Inconclusive) => {
            let why = format!("{label}: the analysis is inconclusive (no data or too few samples)");
            Err(inconclusive(policy, why))
        }
        Some(Verdict::Continue) | None => match max {
            Some(max) if elapsed >= max => {
                let why = format!("{label}: no conclusive analysis within the maximum hold");
                Err(inconclusive(policy, why))
            }
            Some(max) => {
                let until = started.saturating_add(max).unwrap_or(Timestamp::MAX);
                let message = format!("{label}: waiting for a conclusive analysis until {until}");
                ctx.note(true, reasons::AWAITING_ANALYSIS, message);
                ctx.requeue((max - elapsed).min(ANALYSIS_POLL));
                Ok(Gate::Wait)
            }
            None => {
                let message = format!("{label}: waiting for a conclusive analysis");
                ctx.note(true, reasons::AWAITING_ANALYSIS, message);
                ctx.requeue(ANALYSIS_POLL);
                Ok(Gate::Wait)
            }
        },
    }
}

/// What the inconclusive policy asks for.
fn inconclusive(policy: InconclusivePolicy, why: String) -> Stop {
    match policy {
        InconclusivePolicy::Abort => Stop::Abort {
            reason: AbortReason::Inconclusive,
            message: why,
        },
        InconclusivePolicy::Pause => Stop::Pause {
            reason: PauseReason::Inconclusive,
            message: why,
        },
    }
}
