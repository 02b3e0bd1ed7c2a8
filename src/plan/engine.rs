//! The engine's working state for one reconcile, and the entry point that
//! dispatches on where the rollout stands.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{ConditionState, set_condition, types};
use crate::api::{RolloutPhase, RolloutSpec, RolloutStatus};

use super::decision::{Action, EventKind, Plan, PlanEvent};
use super::observed::{Observed, RouteState, TrafficSplit};
use super::steps::{Shape, StepPlan, expand};
use super::{hooks, lifecycle, progress, requests};

/// How soon to look again while waiting on pods, Services or the data plane.
/// Deployments are watched, so this is only a safety net for missed events.
pub const POLL: Duration = Duration::from_secs(5);
/// How soon to look again while a route is missing: a human must act.
pub const ROUTE_MISSING_POLL: Duration = Duration::from_secs(30);
/// How often to look at a verdict while the analysis has not concluded.
pub const ANALYSIS_POLL: Duration = Duration::from_secs(15);

/// What the Progressing condition and `status.message` will say.
pub(super) struct Note {
    pub progressing: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The plan under construction.
pub(super) struct Ctx<'a> {
    pub spec: &'a RolloutSpec,
    pub observed: &'a Observed,
    pub now: Timestamp,
    pub status: RolloutStatus,
    actions: Vec<Action>,
    events: Vec<PlanEvent>,
    requeue: Option<Duration>,
    note: Option<Note>,
    /// Set by the steady state when one revision serves everything.
    pub healthy: bool,
}

impl<'a> Ctx<'a> {
    fn new(spec: &'a RolloutSpec, status: Option<&RolloutStatus>, observed: &'a Observed, now: Timestamp) -> Self {
        Ctx {
            spec,
            observed,
            now,
            status: status.cloned().unwrap_or_default(),
            actions: Vec::new(),
            events: Vec::new(),
            requeue: None,
            note: None,
            healthy: false,
        }
    }

    /// Adds an action once. A later `SetWeights` replaces an earlier one, so
    /// a plan never writes the route twice.
    pub fn act(&mut self, action: Action) {
        if self.actions.contains(&action) {
            return;
        }
        if matches!(action, Action::SetWeights(_)) {
            self.actions.retain(|a| !matches!(a, Action::SetWeights(_)));
        }
        self.actions.push(action);
    }

    /// Whether an action touching this revision's Deployment is planned.
    pub fn scales(&self, revision: &str) -> bool {
        self.actions.iter().any(|a| match a {
            Action::Deploy { revision: r, .. } | Action::Scale { revision: r, .. } => r == revision,
            _ => false,
        })
    }

    pub fn event(&mut self, kind: EventKind, reason: &'static str, message: String) {
        self.events.push(PlanEvent { kind, reason, message });
    }

    /// Asks to be reconciled again within `after`.
    pub fn requeue(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    /// Records what the rollout is doing; the last note of a plan wins.
    pub fn note(&mut self, progressing: bool, reason: &'static str, message: String) {
        self.note = Some(Note {
            progressing,
            reason,
            message,
        });
    }

    pub fn phase(&mut self, phase: RolloutPhase) {
        self.status.phase = Some(phase);
    }

    pub fn now_time(&self) -> Time {
        Time(self.now)
    }

    /// Time since `then`; zero if `then` is in the future (clock skew
    /// between controller replicas must not make a hold negative).
    pub fn elapsed_since(&self, then: Timestamp) -> Duration {
        Duration::try_from(self.now.duration_since(then)).unwrap_or(Duration::ZERO)
    }

    /// Time until `then`; zero if it has passed.
    pub fn elapsed_until(&self, then: Timestamp) -> Duration {
        Duration::try_from(then.duration_since(self.now)).unwrap_or(Duration::ZERO)
    }

    /// `now + after`, saturating.
    pub fn in_future(&self, after: Duration) -> Timestamp {
        self.now.saturating_add(after).unwrap_or(Timestamp::MAX)
    }

    fn finish(mut self) -> Plan {
        let note = self.note.take().unwrap_or(Note {
            progressing: false,
            reason: "Idle",
            message: String::new(),
        });
        self.status.message = (!note.message.is_empty()).then(|| note.message.clone());
        for wanted in self.conditions(note) {
            let now = self.now_time();
            set_condition(&mut self.status.conditions, wanted, self.observed.generation, now);
        }
        Plan {
            actions: self.actions,
            status: self.status,
            requeue_after: self.requeue,
            events: self.events,
        }
    }

    fn conditions(&self, note: Note) -> [ConditionState; 7] {
        let phase = self.status.phase;
        let healthy = phase == Some(RolloutPhase::Healthy) && self.healthy;
        let paused = self.status.pause.as_ref();
        let aborted = self.status.abort.as_ref();
        let invalid = phase == Some(RolloutPhase::InvalidSpec);
        let stalled = match (aborted, invalid) {
            (_, true) => ConditionState::new(types::STALLED, true, note.reason, &note.message),
            (Some(a), false) => ConditionState::new(types::STALLED, true, "Aborted", &a.message),
            (None, false) => ConditionState::new(types::STALLED, false, "NotStalled", ""),
        };
        let reconciling = !healthy && !stalled.status;
        [
            ConditionState::new(types::PROGRESSING, note.progressing, note.reason, &note.message),
            ConditionState::new(
                types::HEALTHY,
                healthy,
                if healthy { "Stable" } else { note.reason },
                &note.message,
            ),
            match paused {
                Some(p) => ConditionState::new(types::PAUSED, true, p.reason.as_str(), ""),
                None => ConditionState::new(types::PAUSED, false, "NotPaused", ""),
            },
            match aborted {
                Some(a) => ConditionState::new(types::ABORTED, true, a.reason.as_str(), &a.message),
                None => ConditionState::new(types::ABORTED, false, "NotAborted", ""),
            },
            ConditionState::new(
                types::INVALID_SPEC,
                invalid,
                if invalid { note.reason } else { "Valid" },
                if invalid { note.message.as_str() } else { "" },
            ),
            if reconciling {
                ConditionState::new(types::RECONCILING, true, note.reason, &note.message)
            } else {
                ConditionState::new(types::RECONCILING, false, "Reconciled", "")
            },
            stalled,
        ]
    }
}

/// The step engine: from the spec, the last status and the observed world,
/// decides what to do now. Pure: no I/O, no clock but `now`.
///
/// Call it on every reconcile with `rollout.status.as_ref()`; apply
/// `actions` in order, write `status` if it differs, publish `events`, and
/// requeue after `requeue_after`.
pub fn plan(spec: &RolloutSpec, status: Option<&RolloutStatus>, observed: &Observed, now: Timestamp) -> Plan {
    let mut ctx = Ctx::new(spec, status, observed, now);
    ctx.status.observed_generation = observed.generation;
    // What an autoscaler reads through the scale subresource: the pods as
    // found, before this plan's actions resize them.
    let pods = observed
        .revisions
        .iter()
        .fold(0i32, |sum, r| sum.saturating_add(r.replicas.max(0)));
    ctx.status.replicas = Some(pods);
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

/// Why the engine refuses to act on a Rollout, as condition and Event reasons.
pub(super) mod reasons {
    /// The spec cannot be acted on.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The spec names objects Siskin did not create and nobody opted in.
    pub const ADOPTION_REQUIRED: &str = "AdoptionRequired";
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
            "PodTemplateUnavailable",
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
            let pair = progress::Pair {
                stable: &stable,
                canary: &desired,
            };
            if ctx.status.canary_revision.as_deref() != Some(desired.as_str()) {
                lifecycle::start_canary(ctx, steps, pair);
            } else if ctx.status.abort.is_some() {
                lifecycle::hold_aborted(ctx, steps, pair);
            } else if ctx.observed.services.stable.as_deref() == Some(desired.as_str())
                && !steps.active_on_canary_at(progress::current_index(ctx))
            {
                // Only a promotion points the stable Service at the canary.
                // Seeing it here means one was acted on but its status never
                // written (the controller stopped in between): finish it
                // rather than re-plan the last step, which would hand the
                // traffic back to the old revision and promote again.
                lifecycle::promote(ctx, steps, pair);
            } else {
                progress::run(ctx, steps, pair);
            }
        }
    }
    lifecycle::retire_old_revisions(ctx, steps, &desired);
    hooks::requeue_pending(ctx);
    // The analysis is evaluated when the Rollout is reconciled: while it
    // measures, reconcile at least every poll, so that a regression is
    // caught during a long minimum hold or an inconclusive pause too.
    if progress::measuring(steps, &ctx.status).is_some() {
        ctx.requeue(ANALYSIS_POLL);
    }
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
