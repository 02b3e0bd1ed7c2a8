//! Webhooks: HTTP calls at the moments of a rollout. Gates (`preRollout`,
//! `rollout`, `confirmPromotion`) hold the rollout until they pass;
//! notifications (`postRollout`, `rollback`, `event`) only report.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;

/// The longest a webhook call may take: a call holds its Rollout's
/// reconcile, and one controller serves every Rollout.
pub const MAX_WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One webhook. Siskin POSTs a JSON body (the Rollout's name and
/// namespace, the hook's name and type, the revisions, the step and
/// `metadata`); a 2xx answer is a yes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Unique among the Rollout's webhooks; status and Events use it.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    #[serde(rename = "type")]
    pub type_: WebhookType,
    /// An absolute `http://` or `https://` URL.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// How long one call may take. Defaults to 10s; at most 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Failed calls (timeouts, connection errors; for gates other than
    /// `confirmPromotion` also non-2xx answers) retried before the hook
    /// fails. Defaults to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub retries: Option<i32>,
    /// What a failed gate does to the rollout. Defaults to `abort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<WebhookFailurePolicy>,
    /// Passed through in the body, e.g. what a load tester should run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// When a webhook is called.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum WebhookType {
    /// Gate: once the canary's pods are up, before any traffic reaches them.
    PreRollout,
    /// Gate: before each step's traffic moves (e.g. start a load test).
    Rollout,
    /// Gate: before the promotion (blue/green: before the switch). A
    /// non-2xx answer is a "no": the rollout waits and asks again.
    ConfirmPromotion,
    /// Notification: after the promotion.
    PostRollout,
    /// Notification: after an abort.
    Rollback,
    /// Notification: every Event Siskin publishes on the Rollout.
    Event,
}

impl WebhookType {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookType::PreRollout => "preRollout",
            WebhookType::Rollout => "rollout",
            WebhookType::ConfirmPromotion => "confirmPromotion",
            WebhookType::PostRollout => "postRollout",
            WebhookType::Rollback => "rollback",
            WebhookType::Event => "event",
        }
    }

    /// Whether the rollout waits for this hook to pass.
    pub fn is_gate(self) -> bool {
        matches!(
            self,
            WebhookType::PreRollout | WebhookType::Rollout | WebhookType::ConfirmPromotion
        )
    }
}

/// What a gate that keeps failing does.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum WebhookFailurePolicy {
    /// Abort and return all traffic to stable.
    #[default]
    Abort,
    /// Pause; `siskin resume` calls the hook again.
    Pause,
}

/// One call of a webhook for one canary (and, for `rollout` hooks, one
/// step): where it stands and what it last answered.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    pub name: String,
    /// The canary revision the call is about.
    pub revision: String,
    /// The step, for `rollout` hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    pub phase: HookPhase,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: i32,
    /// The last answer, e.g. `HTTP 403: not before 18:00`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_called_at: Option<Time>,
}

/// Where one webhook call stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPhase {
    /// To be called (again) when due.
    Waiting,
    /// Answered 2xx.
    Passed,
    /// Failed more often than its retries allow.
    Failed,
}
