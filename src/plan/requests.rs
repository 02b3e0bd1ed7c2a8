//! Manual requests: each annotation value is acted on exactly once, and the
//! outcome (even "ignored, and why") is recorded in the status.

use crate::api::{AbortReason, HandledRequest, PauseReason, REQUEST_HISTORY, RequestedAction};

use super::context::Ctx;
use super::decision::EventKind;
use super::hooks;
use super::steps::StepPlan;

/// Applies a pending request to the status; the dispatch that follows turns
/// the new status into actions in the same plan.
pub(super) fn handle(ctx: &mut Ctx, steps: &StepPlan, desired: &str) {
    let Some(request) = ctx.observed.request.clone() else {
        return;
    };
    if ctx.status.last_handled_request.as_deref() == Some(request.id.as_str()) {
        return;
    }
    let meant_for_another = request.revision.as_deref().filter(|r| *r != desired);
    let (kind, outcome) = match (request.action, meant_for_another) {
        (_, Some(revision)) => (
            EventKind::Warning,
            format!("ignored: meant for revision {revision}, but the rollout is now at {desired}"),
        ),
        (Some(action), None) => (EventKind::Normal, apply(ctx, steps, desired, action)),
        (None, None) => (
            EventKind::Warning,
            "ignored: not one of promote, promote-full, abort, pause, resume, retry".into(),
        ),
    };
    ctx.event(kind, "ManualRequest", format!("{}: {outcome}", request.id));
    let handled_at = ctx.now_time();
    let status = &mut ctx.status;
    status.last_handled_request = Some(request.id.clone());
    status.requests.push(HandledRequest {
        request: request.id,
        handled_at,
        outcome,
    });
    let excess = status.requests.len().saturating_sub(REQUEST_HISTORY);
    status.requests.drain(..excess);
}

fn apply(ctx: &mut Ctx, steps: &StepPlan, desired: &str, action: RequestedAction) -> String {
    let status = &ctx.status;
    let in_flight = status.stable_revision.as_deref().is_some_and(|s| s != desired)
        && status.canary_revision.as_deref() == Some(desired);
    if !in_flight {
        return "ignored: no canary in progress".into();
    }
    let aborted = status.abort.is_some();
    let index = ctx.current_index();
    let promoting = index >= steps.steps.len();
    match action {
        RequestedAction::Abort if aborted => "ignored: already aborted".into(),
        RequestedAction::Abort => {
            let message = format!("aborted by request; canary {desired} rolled back");
            ctx.mark_aborted(AbortReason::Manual, message);
            "aborted".into()
        }
        RequestedAction::Retry if aborted => {
            ctx.begin_steps();
            "retrying from the first step".into()
        }
        RequestedAction::Retry => "ignored: not aborted".into(),
        _ if aborted => "ignored: the rollout is aborted; retry first".into(),
        // A confirmPromotion webhook that failed pauses at the promotion.
        RequestedAction::Resume if promoting && ctx.status.pause.is_some() => resume(ctx, steps, index),
        _ if promoting => "ignored: promotion is under way".into(),
        RequestedAction::Pause if ctx.status.pause.is_some() => "ignored: already paused".into(),
        RequestedAction::Pause => {
            let now = ctx.now_time();
            ctx.pause(PauseReason::Manual, now);
            "paused".into()
        }
        RequestedAction::Resume => resume(ctx, steps, index),
        RequestedAction::Promote => {
            ctx.complete_step(steps, index);
            format!("step {} completed by request", index + 1)
        }
        RequestedAction::PromoteFull => {
            ctx.enter_step(steps.steps.len());
            "skipping the remaining steps".into()
        }
    }
}

/// Leaves a manual or inconclusive pause. The step's hold starts again, so
/// the analysis gets a full hold of fresh evidence. On a pause step, resume
/// means the same as promote.
fn resume(ctx: &mut Ctx, steps: &StepPlan, index: usize) -> String {
    match ctx.status.pause.as_ref().map(|p| p.reason) {
        None => "ignored: not paused".into(),
        Some(PauseReason::PauseStep) => {
            ctx.complete_step(steps, index);
            format!("step {} completed by request", index + 1)
        }
        Some(PauseReason::Webhook) => {
            ctx.status.pause = None;
            hooks::reopen_failed(ctx);
            format!("resumed; step {} calls its failed webhooks again", index + 1)
        }
        Some(PauseReason::Manual | PauseReason::Inconclusive) => {
            ctx.status.pause = None;
            ctx.status.step_started_at = None;
            format!("resumed; step {} holds again", index + 1)
        }
    }
}
