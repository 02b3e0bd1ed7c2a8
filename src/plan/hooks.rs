//! Webhooks, the pure half. The engine decides which calls are wanted and
//! records them in `status.hooks` as `Waiting`; the controller makes the
//! calls that are due ([`due_hooks`]) before the next plan and hands their
//! answers back in [`Observed::hooks`](super::Observed); the engine turns
//! the answers into progress, a wait, a retry, or the gate's failure
//! policy.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::api::conditions::reasons;
use crate::api::{
    AbortReason, HookPhase, HookStatus, PauseReason, RolloutSpec, RolloutStatus, Webhook, WebhookFailurePolicy,
    WebhookType,
};

use super::context::{Ctx, Pair, Stop};
use super::decision::EventKind;
use super::observed::HookOutcome;

/// How long a call may take when the webhook does not say.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Failed calls retried when the webhook does not say.
pub const DEFAULT_HOOK_RETRIES: i32 = 2;
/// How soon a gate that said no, or a call that failed, is called again.
pub const HOOK_RETRY: Duration = Duration::from_secs(5);

/// One call the controller should make now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCall {
    pub name: String,
    pub type_: WebhookType,
    pub url: String,
    pub timeout: Duration,
    pub revision: String,
    pub stable_revision: Option<String>,
    pub step: Option<i32>,
    pub metadata: BTreeMap<String, String>,
}

/// The calls due now: hooks waiting in the status whose last call (if any)
/// is at least [`HOOK_RETRY`] ago.
pub fn due_hooks(spec: &RolloutSpec, status: Option<&RolloutStatus>, now: Timestamp) -> Vec<HookCall> {
    let Some(status) = status else {
        return Vec::new();
    };
    status
        .hooks
        .iter()
        .filter(|h| h.phase == HookPhase::Waiting && is_due(h, now))
        .filter_map(|h| {
            let hook = spec.webhooks.iter().find(|w| w.name == h.name)?;
            Some(HookCall {
                name: hook.name.clone(),
                type_: hook.type_,
                url: hook.url.clone(),
                timeout: hook_timeout(hook),
                revision: h.revision.clone(),
                stable_revision: status.stable_revision.clone(),
                step: h.step,
                metadata: hook.metadata.clone(),
            })
        })
        .collect()
}

fn is_due(hook: &HookStatus, now: Timestamp) -> bool {
    hook.last_called_at
        .as_ref()
        .is_none_or(|t| t.0.saturating_add(HOOK_RETRY).unwrap_or(Timestamp::MAX) <= now)
}

/// How long one call of `hook` may take.
pub fn hook_timeout(hook: &Webhook) -> Duration {
    hook.timeout
        .as_ref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(DEFAULT_HOOK_TIMEOUT)
}

/// Takes the controller's answers into the status, before anything is
/// planned.
pub(super) fn record_results(ctx: &mut Ctx) {
    for result in ctx.observed.hooks.clone() {
        let Some(hook) = ctx.spec.webhooks.iter().find(|w| w.name == result.name).cloned() else {
            continue;
        };
        let now = ctx.now_time();
        let Some(entry) = ctx
            .status
            .hooks
            .iter_mut()
            .find(|h| h.name == result.name && h.phase == HookPhase::Waiting)
        else {
            continue;
        };
        entry.last_called_at = Some(now);
        let kind = hook.type_.as_str();
        let (event, message) = match result.outcome {
            HookOutcome::Yes { code } => {
                entry.phase = HookPhase::Passed;
                entry.message = format!("HTTP {code}");
                let message = format!("{kind} webhook {} answered HTTP {code}", hook.name);
                (Some((EventKind::Normal, "WebhookPassed", message)), None)
            }
            HookOutcome::No { code, body } if hook.type_ == WebhookType::ConfirmPromotion => {
                let said = answer(code, &body);
                let changed = entry.message != said;
                entry.message = said;
                let message = format!("{kind} webhook {} said no: {}", hook.name, entry.message);
                (changed.then_some((EventKind::Normal, "WebhookRefused", message)), None)
            }
            HookOutcome::No { code, body } => (None, Some(answer(code, &body))),
            HookOutcome::Failed { message } => (None, Some(message)),
        };
        if let Some(failure) = message {
            entry.attempts += 1;
            entry.message = failure;
            let retries = hook.retries.unwrap_or(DEFAULT_HOOK_RETRIES).max(0);
            let attempts = entry.attempts;
            let text = format!(
                "{kind} webhook {} failed (attempt {attempts} of {}): {}",
                hook.name,
                retries + 1,
                entry.message
            );
            if attempts > retries {
                entry.phase = HookPhase::Failed;
            }
            ctx.event(EventKind::Warning, "WebhookFailed", text);
        } else if let Some((kind, reason, message)) = event {
            ctx.event(kind, reason, message);
        }
    }
}

fn answer(code: u16, body: &str) -> String {
    let body: String = body.trim().chars().take(200).collect();
    if body.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {body}")
    }
}

/// A gate: true once every webhook of `type_` has answered yes for this
/// canary (and step); false while calls are asked for or answered no. A
/// hook that failed for good returns its failure policy as a [`Stop`].
pub(super) fn gate(ctx: &mut Ctx, pair: Pair, type_: WebhookType, step: Option<i32>) -> Result<bool, Stop> {
    let hooks: Vec<Webhook> = ctx.spec.webhooks.iter().filter(|w| w.type_ == type_).cloned().collect();
    let mut open = true;
    for hook in hooks {
        let entry = ctx
            .status
            .hooks
            .iter()
            .find(|h| h.name == hook.name && h.revision == pair.canary && h.step == step)
            .cloned();
        let Some(entry) = entry else {
            ctx.status.hooks.push(HookStatus {
                name: hook.name.clone(),
                revision: pair.canary.to_string(),
                step,
                phase: HookPhase::Waiting,
                attempts: 0,
                message: String::new(),
                last_called_at: None,
            });
            ctx.note(
                true,
                reasons::AWAITING_WEBHOOK,
                format!("calling {} webhook {}", type_.as_str(), hook.name),
            );
            ctx.requeue(Duration::from_secs(1));
            open = false;
            continue;
        };
        match entry.phase {
            HookPhase::Passed => {}
            HookPhase::Waiting => {
                wait_for(ctx, &hook, &entry);
                open = false;
            }
            HookPhase::Failed => return Err(failed(&hook, &entry)),
        }
    }
    Ok(open)
}

fn wait_for(ctx: &mut Ctx, hook: &Webhook, entry: &HookStatus) {
    let kind = hook.type_.as_str();
    let (reason, message) = if entry.message.is_empty() {
        (
            reasons::AWAITING_WEBHOOK,
            format!("calling {kind} webhook {}", hook.name),
        )
    } else if hook.type_ == WebhookType::ConfirmPromotion && entry.attempts == 0 {
        (
            reasons::AWAITING_CONFIRMATION,
            format!(
                "{kind} webhook {} said no ({}); asking again every {}s",
                hook.name,
                entry.message,
                HOOK_RETRY.as_secs()
            ),
        )
    } else {
        (
            reasons::AWAITING_WEBHOOK,
            format!(
                "{kind} webhook {} failed {} time(s): {}; retrying",
                hook.name, entry.attempts, entry.message
            ),
        )
    };
    ctx.note(true, reason, message);
    let due = entry
        .last_called_at
        .as_ref()
        .map_or(Duration::ZERO, |t| HOOK_RETRY.saturating_sub(ctx.elapsed_since(t.0)));
    ctx.requeue(due.max(Duration::from_secs(1)));
}

/// What a hook that failed for good asks for: its `onFailure` policy.
fn failed(hook: &Webhook, entry: &HookStatus) -> Stop {
    let message = format!(
        "{} webhook {} failed {} time(s): {}",
        hook.type_.as_str(),
        hook.name,
        entry.attempts,
        entry.message
    );
    match hook.on_failure.unwrap_or_default() {
        WebhookFailurePolicy::Abort => Stop::Abort {
            reason: AbortReason::Webhook,
            message,
        },
        WebhookFailurePolicy::Pause => Stop::Pause {
            reason: PauseReason::Webhook,
            message,
        },
    }
}

/// Looks again when a waiting hook is due, so notifications are delivered
/// even while nothing else happens.
pub(super) fn requeue_pending(ctx: &mut Ctx) {
    let next = ctx
        .status
        .hooks
        .iter()
        .filter(|h| h.phase == HookPhase::Waiting)
        .map(|h| {
            h.last_called_at
                .as_ref()
                .map_or(Duration::ZERO, |t| HOOK_RETRY.saturating_sub(ctx.elapsed_since(t.0)))
        })
        .min();
    if let Some(next) = next {
        ctx.requeue(next.max(Duration::from_secs(1)));
    }
}

/// `siskin resume` or `retry`: gates that failed are called again from
/// their first attempt.
pub(super) fn reopen_failed(ctx: &mut Ctx) {
    for hook in &mut ctx.status.hooks {
        if hook.phase == HookPhase::Failed {
            hook.phase = HookPhase::Waiting;
            hook.attempts = 0;
            hook.last_called_at = None;
        }
    }
}
