//! A canary moving through its steps: weights, holds, pauses and the
//! analysis gate at the end of each hold.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::analysis::Verdict;
use crate::api::{
    AbortReason, InconclusivePolicy, PauseReason, PauseStatus, RolloutPhase, RolloutSpec, RolloutStatus, WebhookType,
};

use super::decision::EventKind;
use super::engine::{ANALYSIS_POLL, Ctx};
use super::steps::{Shape, Step, StepPlan, expand};
use super::traffic;
use super::{hooks, lifecycle};

/// The two revisions of an in-flight rollout.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pair<'a> {
    pub stable: &'a str,
    pub canary: &'a str,
}

enum Gate {
    Wait,
    Advance,
}

/// Runs the current step; when it completes, goes straight on to the next
/// so that advancing and moving traffic share one reconcile.
pub(super) fn run(ctx: &mut Ctx, steps: &StepPlan, pair: Pair) {
    if steps.analysis.is_some() {
        ctx.status.verdict = ctx.observed.verdict;
    }
    restart_if_steps_changed(ctx, steps);
    if steps.analysis.is_some() && ctx.observed.verdict == Some(Verdict::Regression) {
        let message = format!("the analysis found canary {} worse than stable", pair.canary);
        lifecycle::abort(ctx, steps, pair, AbortReason::Regression, message);
        return;
    }
    if let Some(pause) = &ctx.status.pause
        && pause.reason != PauseReason::PauseStep
    {
        let message = match pause.reason {
            PauseReason::Manual => "paused by request; `siskin resume` continues".to_string(),
            PauseReason::Webhook => "paused: a webhook failed; `siskin resume` calls it again".to_string(),
            _ => "paused: the analysis is inconclusive; `siskin resume`, `promote` or `abort`".to_string(),
        };
        traffic::follow_scale(ctx, steps, pair, current_index(ctx));
        ctx.phase(RolloutPhase::Paused);
        ctx.note(false, "Paused", message);
        return;
    }
    // Each pass either waits or completes one step, so this is bounded.
    for _ in 0..=steps.steps.len() {
        let index = current_index(ctx);
        if index >= steps.steps.len() {
            // Blue/green confirmed before its switch, which was the promotion.
            let confirmed =
                steps.shape == Shape::BlueGreen || hooks::gate(ctx, steps, pair, WebhookType::ConfirmPromotion, None);
            if confirmed {
                lifecycle::promote(ctx, steps, pair);
            }
            return;
        }
        match run_step(ctx, steps, pair, index) {
            Gate::Wait => return,
            Gate::Advance => advance(ctx, steps, index),
        }
    }
}

/// The canary revision the analysis measures now: one in flight (neither
/// aborted nor finished) whose current step sends it requests. `None` when
/// there is nothing to compare.
pub fn measured_canary(spec: &RolloutSpec, status: &RolloutStatus) -> Option<String> {
    measuring(&expand(spec).ok()?, status)
}

pub(super) fn measuring(steps: &StepPlan, status: &RolloutStatus) -> Option<String> {
    if !steps.measured {
        return None;
    }
    let canary = status.canary_revision.clone()?;
    let live = matches!(status.phase, Some(RolloutPhase::Progressing | RolloutPhase::Paused));
    let index = status
        .current_step_index
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0);
    let serves = steps.canary_serves_at(index);
    (live && serves && status.abort.is_none() && status.stable_revision.is_some()).then_some(canary)
}

pub(super) fn current_index(ctx: &Ctx) -> usize {
    ctx.status
        .current_step_index
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0)
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
        restart_steps(ctx);
        ctx.event(
            EventKind::Warning,
            "StepIndexReset",
            "the recorded step does not exist in the current steps; starting them again from the first".to_string(),
        );
    }
}

/// Back to the first step, unpaused, its hold not yet started.
fn restart_steps(ctx: &mut Ctx) {
    ctx.status.current_step_index = Some(0);
    ctx.status.step_started_at = None;
    ctx.status.pause = None;
}

/// Edited steps make the stored index meaningless: start them again from
/// the first, at whatever traffic the route has now.
fn restart_if_steps_changed(ctx: &mut Ctx, steps: &StepPlan) {
    let changed = ctx.status.steps_hash.as_ref().is_some_and(|h| *h != steps.hash);
    if changed {
        restart_steps(ctx);
        ctx.event(
            EventKind::Normal,
            "StepsChanged",
            "the steps changed mid-rollout; starting them again from the first".to_string(),
        );
    }
    ctx.status.steps_hash = Some(steps.hash.clone());
}

fn run_step(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, index: usize) -> Gate {
    let weight = steps.weight_at(index);
    let Some(step) = steps.steps.get(index).cloned() else {
        return Gate::Advance;
    };
    if !matches!(step, Step::Pause { duration: None }) {
        ctx.status.pause = None;
    }
    ctx.phase(RolloutPhase::Progressing);
    if !traffic::ensure(ctx, steps, pair, index) {
        return Gate::Wait;
    }
    // The hold starts when the data plane has the weight, not when it was
    // written: a slow gateway must not shorten the canary's exposure.
    // Status keeps whole seconds, so the start is rounded up to the next
    // one: a hold may last up to a second longer, never shorter.
    let started = match &ctx.status.step_started_at {
        Some(t) => t.0,
        None => {
            let up = jiff::TimestampRound::new()
                .smallest(jiff::Unit::Second)
                .mode(jiff::RoundMode::Ceil);
            let start = ctx.now.round(up).unwrap_or(ctx.now);
            ctx.status.step_started_at = Some(Time(start));
            start
        }
    };
    let label = step_label(steps, index, weight);
    match step {
        Step::Weight { min, max, .. } | Step::Match { min, max, .. } | Step::Mirror { min, max, .. } => {
            gate(ctx, steps, steps.analysis, pair, &label, started, (min, max))
        }
        // A rolling update's analysis runs in the background: a regression
        // aborts at any batch (see `run`), but only the last batch, the one
        // before the promotion, waits for a non-inferior verdict. Waiting
        // for evidence at every batch would hold mixed versions for long.
        Step::Batch { min, max, .. } if index + 1 < steps.steps.len() => {
            gate(ctx, steps, None, pair, &label, started, (min, max))
        }
        Step::Batch { min, max, .. } => gate(ctx, steps, steps.analysis, pair, &label, started, (min, max)),
        Step::Switch { window } => {
            let elapsed = ctx.elapsed_since(started);
            if elapsed >= window {
                return Gate::Advance;
            }
            let until = started.saturating_add(window).unwrap_or(Timestamp::MAX);
            let message = format!(
                "{label}: all traffic on {}; {} stays up for a rollback until {until}",
                pair.canary, pair.stable
            );
            ctx.note(true, "Switched", message);
            ctx.requeue(window - elapsed);
            Gate::Wait
        }
        Step::Pause {
            duration: Some(duration),
        } => gate(
            ctx,
            steps,
            steps.analysis,
            pair,
            &label,
            started,
            (duration, Some(duration)),
        ),
        Step::Pause { duration: None } => {
            if ctx.status.pause.is_none() {
                ctx.status.pause = Some(PauseStatus {
                    reason: PauseReason::PauseStep,
                    since: Time(started),
                });
                ctx.event(EventKind::Normal, "Paused", format!("{label}: waiting for promote"));
            }
            ctx.phase(RolloutPhase::Paused);
            ctx.note(false, "PauseStep", format!("{label}: waiting for `siskin promote`"));
            Gate::Wait
        }
    }
}

fn step_label(steps: &StepPlan, index: usize, weight: i32) -> String {
    let traffic = match (steps.matches_at(index), steps.steps.get(index)) {
        (_, None) => "promotion".to_string(),
        (Some(matches), _) => format!("requests matching {}", describe_matches(matches)),
        (None, Some(Step::Switch { .. })) => "switched".to_string(),
        (None, Some(Step::Mirror { percent, .. })) => format!("mirror {percent}%"),
        (None, Some(Step::Batch { .. })) => format!("{}/{} new pods", steps.batch_at(index), steps.replicas),
        (None, _) if steps.shape == Shape::BlueGreen && weight == 0 => "preview".to_string(),
        (None, _) => format!("weight {weight}"),
    };
    format!("step {}/{} ({traffic})", index + 1, steps.steps.len())
}

/// `x-beta=true or x-a=1 and cookie canary=always`, for messages.
pub(super) fn describe_matches(matches: &[crate::api::RequestMatch]) -> String {
    let one = |m: &crate::api::RequestMatch| {
        let headers = m.headers.iter().map(|h| format!("{}={}", h.name, h.value));
        let cookie = m.cookie.iter().map(|c| format!("cookie {}={}", c.name, c.value));
        headers.chain(cookie).collect::<Vec<_>>().join(" and ")
    };
    matches.iter().map(one).collect::<Vec<_>>().join(" or ")
}

/// Decides whether a held step may advance. Without analysis the minimum
/// hold is enough. With analysis only `NonInferior` advances; anything else
/// waits until `max`, and then the inconclusive policy applies, because
/// missing evidence is never a pass.
fn gate(
    ctx: &mut Ctx,
    steps: &StepPlan,
    analysis: Option<InconclusivePolicy>,
    pair: Pair,
    label: &str,
    started: Timestamp,
    (min, max): (Duration, Option<Duration>),
) -> Gate {
    let elapsed = ctx.elapsed_since(started);
    if elapsed < min {
        let until = started.saturating_add(min).unwrap_or(Timestamp::MAX);
        ctx.note(true, "Holding", format!("{label}: holding until {until}"));
        ctx.requeue(min - elapsed);
        return Gate::Wait;
    }
    let Some(policy) = analysis else {
        return Gate::Advance;
    };
    match ctx.observed.verdict {
        Some(Verdict::NonInferior) => Gate::Advance,
        Some(Verdict::Regression) => {
            let message = format!("the analysis found canary {} worse than stable", pair.canary);
            lifecycle::abort(ctx, steps, pair, AbortReason::Regression, message);
            Gate::Wait
        }
        Some(Verdict::Inconclusive) => {
            let why = format!("{label}: the analysis is inconclusive (no data or too few samples)");
            inconclusive(ctx, steps, pair, policy, why);
            Gate::Wait
        }
        Some(Verdict::Continue) | None => match max {
            Some(max) if elapsed >= max => {
                let why = format!("{label}: no conclusive analysis within the maximum hold");
                inconclusive(ctx, steps, pair, policy, why);
                Gate::Wait
            }
            Some(max) => {
                let until = started.saturating_add(max).unwrap_or(Timestamp::MAX);
                let message = format!("{label}: waiting for a conclusive analysis until {until}");
                ctx.note(true, "AwaitingAnalysis", message);
                ctx.requeue((max - elapsed).min(ANALYSIS_POLL));
                Gate::Wait
            }
            None => {
                let message = format!("{label}: waiting for a conclusive analysis");
                ctx.note(true, "AwaitingAnalysis", message);
                ctx.requeue(ANALYSIS_POLL);
                Gate::Wait
            }
        },
    }
}

fn inconclusive(ctx: &mut Ctx, steps: &StepPlan, pair: Pair, policy: InconclusivePolicy, why: String) {
    match policy {
        InconclusivePolicy::Abort => {
            lifecycle::abort(ctx, steps, pair, AbortReason::Inconclusive, why);
        }
        InconclusivePolicy::Pause => {
            ctx.status.pause = Some(PauseStatus {
                reason: PauseReason::Inconclusive,
                since: ctx.now_time(),
            });
            ctx.event(EventKind::Warning, "AnalysisInconclusive", why.clone());
            ctx.phase(RolloutPhase::Paused);
            ctx.note(false, "Paused", format!("{why}; paused"));
        }
    }
}

pub(super) fn advance(ctx: &mut Ctx, steps: &StepPlan, index: usize) {
    let next = index + 1;
    ctx.status.current_step_index = i32::try_from(next).ok();
    ctx.status.step_started_at = None;
    ctx.status.pause = None;
    let label = step_label(steps, index, steps.weight_at(index));
    ctx.event(EventKind::Normal, "StepCompleted", format!("{label} completed"));
}
