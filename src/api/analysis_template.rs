//! `AnalysisTemplate` and `ClusterAnalysisTemplate`: the metrics a Rollout's
//! analysis reads, where from, and which judge turns them into a verdict.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::judge::JudgeSpec;

/// Metrics compared between the canary and stable, continuously.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "siskin.io",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "at"
)]
#[kube(derive = "PartialEq")]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Arguments the queries use as `{{args.NAME}}`; a value here is the
    /// default, a Rollout's `analysis.args` override it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<TemplateArg>,
    #[schemars(length(min = 1))]
    pub metrics: Vec<MetricSpec>,
}

/// The same template, shared by every namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "siskin.io",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    shortname = "cat"
)]
#[kube(derive = "PartialEq")]
pub struct ClusterAnalysisTemplateSpec {
    #[serde(flatten)]
    pub template: AnalysisTemplateSpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TemplateArg {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// One metric: a provider, queries of one kind, and a judge.
///
/// Queries are evaluated once per arm. Variables: `{{namespace}}`,
/// `{{service}}` (the arm's Service: `<service>-stable` or `<service>-canary`),
/// `{{revision}}` (the arm's revision), `{{rollout}}`, and `{{args.NAME}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    pub name: String,
    pub provider: ProviderSpec,
    /// Cumulative request and error counters per arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<CountsQuery>,
    /// A cumulative latency histogram per arm: one series per `le` bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<HistogramQuery>,
    /// One scalar for the canary (threshold checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<ValueQuery>,
    /// Defaults to the sequential judge.
    #[serde(default)]
    pub judge: JudgeSpec,
}

/// Where a metric is read from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ProviderSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PrometheusProvider {
    /// e.g. `http://prometheus.monitoring:9090`.
    pub address: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct CountsQuery {
    /// Cumulative requests of the arm, one scalar (e.g. `sum(...)`).
    pub total: String,
    /// Cumulative failed requests of the arm.
    pub errors: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct HistogramQuery {
    /// Cumulative bucket counters of the arm, one series per `le` label,
    /// e.g. `sum by (le) (..._bucket{...})`.
    pub buckets: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ValueQuery {
    pub query: String,
}
