//! The engine's working state for one reconcile, the types its parts
//! share, and the transitions of a rollout's status, each written once:
//! entering a step, pausing, aborting, clearing the canary's traffic,
//! forgetting a finished canary.
//!
//! Everything else in the engine depends on this module; it depends on
//! nothing in the engine but the plain data it carries.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::analysis::Verdict;
use crate::analysis::status::AnalysisStatus;

use crate::api::conditions::{ConditionState, TRUE, reasons, set_condition, types};
use crate::api::{
    AbortReason, AbortStatus, HookPhase, HookStatus, PauseReason, PauseStatus, RequestMatch, RolloutPhase, RolloutSpec,
    RolloutStatus, WebhookType,
};

use super::decision::{Action, EventKind, Plan, PlanEvent, clear_canary_traffic};
use super::observed::Observed;
use super::steps::{Shape, Step, StepPlan};

/// How soon to look again while waiting on pods, Services or the data plane.
/// Deployments are watched, so this is only a safety net for missed events.
pub const POLL: Duration = Duration::from_secs(5);
/// How soon to look again while a route is missing: a human must act.
pub const ROUTE_MISSING_POLL: Duration = Duration::from_secs(30);
/// How often to look at a verdict while the analysis has not concluded.
pub const ANALYSIS_POLL: Duration = Duration::from_secs(15);

/// What the Progressing condition and `status.message` will say.
struct Note {
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
    pub fn new(spec: &'a RolloutSpec, status: Option<&RolloutStatus>, observed: &'a Observed, now: Timestamp) -> Self {
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

    /// Whether this plan already publishes an Event of `reason`.
    pub fn tells(&self, reason: &str) -> bool {
        self.events.iter().any(|e| e.reason == reason)
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

    /// What an autoscaler reads through the scale subresource: the pods
    /// every revision's Deployment asks for once this plan's actions are
    /// applied, as a Deployment counts the pods it has created. Counted
    /// after the actions, a resize and its count are one status write.
    fn pods_asked_for(&self) -> i32 {
        let asked = |revision: &str, found: i32| {
            self.actions
                .iter()
                .rev()
                .find_map(|a| match a {
                    Action::Deploy { revision: r, replicas } | Action::Scale { revision: r, replicas }
                        if r == revision =>
                    {
                        Some(*replicas)
                    }
                    _ => None,
                })
                .unwrap_or(found)
        };
        let found: i32 = self
            .observed
            .revisions
            .iter()
            .fold(0i32, |sum, r| sum.saturating_add(asked(&r.revision, r.replicas).max(0)));
        let created: i32 = self
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Deploy { revision, replicas } if self.observed.revision(revision).is_none() => Some(*replicas),
                _ => None,
            })
            .fold(0i32, |sum, r| sum.saturating_add(r.max(0)));
        found.saturating_add(created)
    }

    pub fn finish(mut self) -> Plan {
        let note = self.note.take().unwrap_or(Note {
            progressing: false,
            reason: reasons::IDLE,
            message: String::new(),
        });
        self.status.message = (!note.message.is_empty()).then(|| note.message.clone());
        for wanted in self.conditions(note) {
            let now = self.now_time();
            set_condition(&mut self.status.conditions, wanted, self.observed.generation, now);
        }
        record_analysis(&mut self.status, self.observed.analysis.as_ref());
        self.status.replicas = Some(self.pods_asked_for());
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
            (Some(a), false) => ConditionState::new(types::STALLED, true, reasons::ABORTED, &a.message),
            (None, false) => ConditionState::new(types::STALLED, false, reasons::NOT_STALLED, ""),
        };
        let reconciling = !healthy && !stalled.status;
        [
            ConditionState::new(types::PROGRESSING, note.progressing, note.reason, &note.message),
            ConditionState::new(
                types::HEALTHY,
                healthy,
                if healthy { reasons::STABLE } else { note.reason },
                &note.message,
            ),
            match paused {
                Some(p) => ConditionState::new(types::PAUSED, true, p.reason.as_str(), ""),
                None => ConditionState::new(types::PAUSED, false, reasons::NOT_PAUSED, ""),
            },
            match aborted {
                Some(a) => ConditionState::new(types::ABORTED, true, a.reason.as_str(), &a.message),
                None => ConditionState::new(types::ABORTED, false, reasons::NOT_ABORTED, ""),
            },
            ConditionState::new(
                types::INVALID_SPEC,
                invalid,
                if invalid { note.reason } else { reasons::VALID },
                if invalid { note.message.as_str() } else { "" },
            ),
            if reconciling {
                ConditionState::new(types::RECONCILING, true, note.reason, &note.message)
            } else {
                ConditionState::new(types::RECONCILING, false, reasons::RECONCILED, "")
            },
            stalled,
        ]
    }
}

/// The two revisions of an in-flight rollout.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pair<'a> {
    pub stable: &'a str,
    pub canary: &'a str,
}

/// Why a canary cannot go on by itself. Gates and steps return it; the
/// engine alone acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// Roll back now: all traffic to stable.
    Abort { reason: AbortReason, message: String },
    /// Hold where it is until a human decides.
    Pause { reason: PauseReason, message: String },
}

impl Ctx<'_> {
    /// The step the stored index points at; the first when there is none.
    pub fn current_index(&self) -> usize {
        self.status
            .current_step_index
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(0)
    }

    /// Makes step `index` the current one: unpaused, its hold not yet
    /// started. `index` equal to the number of steps is the promotion.
    pub fn enter_step(&mut self, index: usize) {
        self.status.current_step_index = i32::try_from(index).ok();
        self.status.step_started_at = None;
        self.status.pause = None;
    }

    /// Starts the current step's hold now, rounded up to the next whole
    /// second (status keeps whole seconds: a hold may last up to a second
    /// longer, never shorter). Called by the plan that writes the step's
    /// traffic onto the route, so that entering a step and starting its hold
    /// are one status write; a route written again (edited under us) starts
    /// the hold again.
    pub fn start_hold(&mut self) -> Timestamp {
        let up = jiff::TimestampRound::new()
            .smallest(jiff::Unit::Second)
            .mode(jiff::RoundMode::Ceil);
        let start = self.now.round(up).unwrap_or(self.now);
        self.status.step_started_at = Some(Time(start));
        start
    }

    /// Step `index` is done: the next one starts.
    pub fn complete_step(&mut self, steps: &StepPlan, index: usize) {
        self.enter_step(index + 1);
        let label = step_label(steps, index, steps.weight_at(index));
        self.event(EventKind::Normal, "StepCompleted", format!("{label} completed"));
    }

    /// The canary's steps begin from the first with nothing carried over:
    /// no abort, no verdict, no judges' state (it belonged to the canary it
    /// measured), no gate answers. A new canary and `siskin retry`.
    pub fn begin_steps(&mut self) {
        self.enter_step(0);
        self.status.abort = None;
        self.status.verdict = None;
        self.status.analysis = None;
        self.forget_gates();
    }

    /// Pauses for `reason` unless already paused. Returns whether this
    /// paused it, so that the Event is published once.
    pub fn pause(&mut self, reason: PauseReason, since: Time) -> bool {
        if self.status.pause.is_some() {
            return false;
        }
        self.status.pause = Some(PauseStatus { reason, since });
        true
    }

    /// Records an abort: the Event, the rollback notifications, and the
    /// status that makes every later plan hold the canary aborted.
    pub fn mark_aborted(&mut self, reason: AbortReason, message: String) {
        self.event(EventKind::Warning, "Aborted", message.clone());
        if let Some(canary) = self.status.canary_revision.clone() {
            self.notify(WebhookType::Rollback, &canary);
        }
        self.status.abort = Some(AbortStatus {
            reason,
            message,
            at: self.now_time(),
        });
        self.status.pause = None;
        self.status.step_started_at = None;
    }

    /// Plans the route writes that send all traffic back to stable and
    /// remove Siskin's match rule and mirror (see
    /// [`clear_canary_traffic`]). Returns whether any write was needed.
    pub fn clear_canary_traffic(&mut self) -> bool {
        let writes = clear_canary_traffic(self.observed.route.as_ref());
        let any = !writes.is_empty();
        for action in writes {
            self.act(action);
        }
        any
    }

    /// Forgets everything about a finished or dropped canary.
    pub fn forget_canary(&mut self) {
        let status = &mut self.status;
        status.canary_revision = None;
        status.current_step_index = None;
        status.steps_hash = None;
        status.step_started_at = None;
        status.pause = None;
        status.abort = None;
        status.queued_since = None;
        status.canary_weight = Some(0);
    }

    /// Queues the notification webhooks of `type_` about `revision`.
    pub fn notify(&mut self, type_: WebhookType, revision: &str) {
        let names: Vec<String> = self
            .spec
            .webhooks
            .iter()
            .filter(|w| w.type_ == type_)
            .map(|w| w.name.clone())
            .collect();
        for name in names {
            self.status
                .hooks
                .retain(|h| !(h.name == name && h.revision == revision));
            self.status.hooks.push(HookStatus {
                name,
                revision: revision.to_string(),
                step: None,
                phase: HookPhase::Waiting,
                attempts: 0,
                message: String::new(),
                last_called_at: None,
            });
        }
    }

    /// A new canary (or a retry) starts with no gate answers;
    /// notifications not yet delivered stay.
    pub fn forget_gates(&mut self) {
        let spec = self.spec;
        let notification = |h: &HookStatus| {
            spec.webhooks
                .iter()
                .find(|w| w.name == h.name)
                .is_some_and(|w| !w.type_.is_gate())
        };
        self.status
            .hooks
            .retain(|h| notification(h) && h.phase == HookPhase::Waiting);
    }
}

/// Keeps the judges' state in status while it is about the current canary,
/// and says which query left the analysis inconclusive.
fn record_analysis(status: &mut RolloutStatus, analysis: Option<&AnalysisStatus>) {
    let Some(analysis) = analysis.filter(|a| status.canary_revision.as_deref() == Some(a.canary.as_str())) else {
        if status.abort.is_none() {
            status.analysis = None;
        }
        return;
    };
    let paused_inconclusive =
        |c: &Condition| c.type_ == types::PAUSED && c.status == TRUE && c.reason == PauseReason::Inconclusive.as_str();
    let inconclusive =
        analysis.verdict == Some(Verdict::Inconclusive) || status.conditions.iter().any(paused_inconclusive);
    if inconclusive && let Some(why) = analysis.explain() {
        // The pause this analysis caused says why, naming each metric and
        // what a decision still needs.
        for paused in status.conditions.iter_mut().filter(|c| paused_inconclusive(c)) {
            paused.message.clone_from(&why);
        }
        let message = status.message.take().unwrap_or_default();
        status.message = Some(if message.is_empty() {
            why
        } else {
            format!("{message} ({why})")
        });
    }
    status.analysis = serde_json::to_value(analysis).ok();
}

/// The route as users name it in messages.
pub(super) fn route_name(spec: &RolloutSpec) -> String {
    spec.traffic_routing()
        .and_then(|r| r.route())
        .map_or_else(|| "the route".to_string(), |route| route.to_string())
}

/// `step 2/4 (weight 20)`, for messages.
pub(super) fn step_label(steps: &StepPlan, index: usize, weight: i32) -> String {
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
pub(super) fn describe_matches(matches: &[RequestMatch]) -> String {
    let one = |m: &RequestMatch| {
        let headers = m.headers.iter().map(|h| format!("{}={}", h.name, h.value));
        let cookie = m.cookie.iter().map(|c| format!("cookie {}={}", c.name, c.value));
        headers.chain(cookie).collect::<Vec<_>>().join(" and ")
    };
    matches.iter().map(one).collect::<Vec<_>>().join(" or ")
}
