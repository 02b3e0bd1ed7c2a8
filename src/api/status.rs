//! `Rollout.status`: everything the controller knows. A restart at any moment
//! resumes from here; nothing lives only in memory.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::reasons;
use crate::analysis::Verdict;

/// How many handled manual requests the status remembers.
pub const REQUEST_HISTORY: usize = 10;

/// The observed state of a Rollout, written only by the controller.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,

    /// The pods of every revision, as the revisions' Deployments ask for
    /// them: what the `scale` subresource reports to an autoscaler, like a
    /// Deployment's `status.replicas` (which counts surge pods too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// The label selector of every revision's pods, in the string form the
    /// `scale` subresource reports (`siskin.io/rollout=<name>`): an
    /// autoscaler averages its metrics over stable and canary alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// One human sentence on what the rollout is doing or waiting for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// The strategy in use (`canary`), for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,

    /// The revision serving users: the label value `siskin.io/revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,

    /// The revision being rolled out (or aborted), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,

    /// Index into the strategy's steps; equal to their number once all are
    /// done and the canary is being promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,

    /// A hash of the steps the index refers to: when users edit the steps
    /// mid-rollout, the index no longer means anything and steps restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_hash: Option<String>,

    /// When the current step's traffic was written onto the route (or the
    /// pause began): holds are measured from here, and a step passes only
    /// once the data plane has accepted its traffic too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,

    /// The canary weight Siskin wants on the route, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,

    /// The canary weight last read from the route, in percent of the two
    /// backends Siskin manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_canary_weight: Option<i32>,

    /// The latest combined analysis verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,

    /// Set while paused; cleared by resume, promote or abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStatus>,

    /// Set once aborted; cleared by retry or by a new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortStatus>,

    /// Revisions that no longer receive traffic and when they scale to zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale_downs: Vec<ScheduledScaleDown>,

    /// Since when the new revision has waited for a rollout slot; the
    /// longest waiting starts first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_since: Option<Time>,

    /// The value of the `siskin.io/request` annotation last acted upon: a
    /// request is handled exactly once, even across controller restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_request: Option<String>,

    /// The latest manual requests and what became of them, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<HandledRequest>,

    /// The judges' state (sequential test statistics, counters), owned by the
    /// analysis module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::preserved_object")]
    pub analysis: Option<serde_json::Value>,

    /// The webhook calls of the current canary, and notifications not yet
    /// delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::api::HookStatus>,

    /// Standard conditions: Progressing, Healthy, Paused, Aborted, InvalidSpec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Where a rollout stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutPhase {
    /// The first revision is starting; nothing to compare it with yet.
    Pending,
    /// A new revision waits for one of the cluster's rollout slots
    /// (`--max-rollouts-in-progress`); stable serves everything meanwhile.
    Queued,
    /// A canary is going through its steps.
    Progressing,
    /// Waiting for a human (pause step, manual pause, inconclusive analysis).
    Paused,
    /// All steps passed; the canary is scaling to full size to become stable.
    Promoting,
    /// One revision serves all traffic; nothing is in flight.
    Healthy,
    /// The canary was rolled back; waiting for retry or a new revision.
    Aborted,
    /// The spec cannot be acted on; traffic is left as it is.
    InvalidSpec,
}

impl RolloutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutPhase::Pending => "Pending",
            RolloutPhase::Queued => "Queued",
            RolloutPhase::Progressing => "Progressing",
            RolloutPhase::Paused => "Paused",
            RolloutPhase::Promoting => "Promoting",
            RolloutPhase::Healthy => "Healthy",
            RolloutPhase::Aborted => "Aborted",
            RolloutPhase::InvalidSpec => "InvalidSpec",
        }
    }
}

/// Why and since when the rollout is paused.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PauseStatus {
    pub reason: PauseReason,
    pub since: Time,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseReason {
    /// A `pause: {}` step waits for `siskin promote`.
    PauseStep,
    /// `siskin pause`.
    Manual,
    /// The analysis could not conclude and `onInconclusive` is `pause`.
    Inconclusive,
    /// A gate webhook kept failing and its `onFailure` is `pause`.
    Webhook,
}

impl PauseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::PauseStep => reasons::PAUSE_STEP,
            PauseReason::Manual => reasons::MANUAL,
            PauseReason::Inconclusive => reasons::INCONCLUSIVE,
            PauseReason::Webhook => reasons::WEBHOOK,
        }
    }
}

/// Why and when the rollout was aborted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AbortStatus {
    pub reason: AbortReason,
    pub message: String,
    pub at: Time,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// The analysis found the canary worse than stable.
    Regression,
    /// The analysis could not conclude and `onInconclusive` is `abort`.
    Inconclusive,
    /// `siskin abort`.
    Manual,
    /// A gate webhook kept failing and its `onFailure` is `abort`.
    Webhook,
}

impl AbortReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AbortReason::Regression => reasons::REGRESSION,
            AbortReason::Inconclusive => reasons::INCONCLUSIVE,
            AbortReason::Manual => reasons::MANUAL,
            AbortReason::Webhook => reasons::WEBHOOK,
        }
    }
}

/// A revision that will be scaled to zero at `at`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ScheduledScaleDown {
    pub revision: String,
    pub at: Time,
}

/// A manual request the controller acted upon (or ignored, and why).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HandledRequest {
    /// The annotation value, e.g. `promote@2026-11-26T10:15:00.123Z`.
    pub request: String,
    pub handled_at: Time,
    pub outcome: String,
}

impl RolloutStatus {
    /// Whether this Rollout holds one of the cluster's rollout slots: a
    /// canary in flight, paused or promoting, not aborted.
    pub fn holds_rollout_slot(&self) -> bool {
        self.canary_revision.is_some()
            && self.abort.is_none()
            && matches!(
                self.phase,
                Some(RolloutPhase::Progressing | RolloutPhase::Paused | RolloutPhase::Promoting)
            )
    }
}
