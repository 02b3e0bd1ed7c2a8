//! Custom resource types: the single source of the YAML in `manifests/crds/`.
//!
//! `Rollout` is what users write (`spec`) and everything the controller
//! knows (`status`). Manual requests from the CLI travel as an annotation;
//! see [`request`].

pub mod analysis_template;
pub mod conditions;
mod duration;
mod provider;
pub mod request;
mod revision;
mod rollout;
mod schema;
mod status;
mod webhook;

pub use duration::{Duration, DurationError};
pub use request::{ManualRequest, REQUEST_ANNOTATION, RequestedAction};
pub use revision::{ADOPT_ANNOTATION, INSTANCE_LABEL, REVISION_LABEL, ROLLOUT_LABEL, revision_hash, revision_of_value};
pub use rollout::{
    AbTestStrategy, AnalysisArg, AnalysisTemplateRef, BlueGreenStrategy, COOKIE_HEADER, CanaryStep, CanaryStrategy,
    CookieMatch, GatewayApiRouting, HeaderMatch, Hold, InconclusivePolicy, IstioRouting, LocalObjectName,
    MAX_ANALYSIS_ARGS, MAX_ANALYSIS_TEMPLATES, MAX_REPLICAS, MAX_ROLLOUT_NAME, MAX_SERVICE_NAME, MAX_STEPS,
    MAX_WEBHOOKS, MirrorStage, PauseStep, RequestMatch, RollingStrategy, Rollout, RolloutAnalysis, RolloutSpec,
    RolloutStrategy, RouteRef, ServiceRef, TrafficRouting, VirtualServiceRef, WorkloadRef,
};
pub use status::{
    AbortReason, AbortStatus, HandledRequest, PauseReason, PauseStatus, REQUEST_HISTORY, RolloutPhase, RolloutStatus,
    ScheduledScaleDown,
};
pub use webhook::{HookPhase, HookStatus, MAX_WEBHOOK_TIMEOUT, Webhook, WebhookFailurePolicy, WebhookType};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use analysis_template::{AnalysisTemplate, ClusterAnalysisTemplate};

/// Every CRD Siskin defines, in the order they are installed.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Rollout::crd(), AnalysisTemplate::crd(), ClusterAnalysisTemplate::crd()]
}

/// The YAML of every CRD, as `siskin crd` prints it and
/// `manifests/crds/rollout.yaml` stores it.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| {
            // A CRD is plain data built by kube-derive: it has no maps with
            // non-string keys, so serialization cannot fail.
            serde_yaml::to_string(crd).expect("a CustomResourceDefinition serializes to YAML")
        })
        .map(|doc| format!("---\n{doc}"))
        .collect()
}

#[cfg(test)]
mod tests;
