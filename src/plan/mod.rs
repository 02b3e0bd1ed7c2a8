//! The pure step engine: (spec, status, observed world) → next action. No I/O.
//!
//! The controller observes the world into an [`Observed`], calls [`plan`],
//! applies [`Plan::actions`] in order, writes [`Plan::status`] (skipping the
//! write when it is unchanged), publishes [`Plan::events`] and requeues after
//! [`Plan::requeue_after`]. Everything the engine needs to resume lives in
//! the status, so a restart at any moment continues where it stopped.
//!
//! By design a plan writes the route at most once: a step costs one route
//! write and the status writes around it.

mod context;
mod decision;
mod engine;
mod hooks;
mod lifecycle;
mod observed;
mod progress;
mod queue;
mod record;
mod requests;
mod rolling;
mod steps;
mod traffic;

pub use context::{ANALYSIS_POLL, POLL, ROUTE_MISSING_POLL};
pub use decision::{Action, EventKind, Plan, PlanEvent, clear_canary_traffic};
pub use engine::plan;
pub use hooks::{HOOK_RETRY, HookCall, due_hooks, hook_timeout};
pub use observed::{HookOutcome, HookResult, Observed, RevisionState, RouteState, ServiceSelectors, TrafficSplit};
pub use queue::{Contender, QueuePlace, queue_place};
pub use record::{NOTE_DELAY, StatusWrite, status_write};
pub use steps::{
    BLUE_GREEN_SETTLE, DEFAULT_SCALE_DOWN_DELAY, FIRST_DATA_GRACE, Shape, SpecError, Step, StepPlan, expand,
    measured_canary,
};

#[cfg(test)]
mod tests;
