//! `AnalysisTemplate` and `ClusterAnalysisTemplate`: the metrics a Rollout's
//! analysis reads, where from, and which judge turns them into a verdict.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AnalysisArg;
pub use super::provider::{
    AuthSpec, CREDENTIALS_LABEL, ConnectionSpec, HeaderSpec, PrometheusProvider, ProviderSpec, SecretKey, TlsSpec,
    WebMethod, WebProvider,
};
use crate::analysis::judge::JudgeSpec;
use crate::analysis::query::{self, RenderError, Variables};

/// Metrics compared between the canary and stable, continuously.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "siskin.io",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "sat"
)]
#[kube(derive = "PartialEq")]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Arguments the queries use as `{{args.NAME}}`; a value here is the
    /// default, a Rollout's `analysis.args` override it unless it is pinned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<TemplateArg>,
    /// Every query of every metric must use `{{namespace}}` inside a quoted
    /// string (a label matcher), or the analysis is refused as inconclusive.
    /// `{{namespace}}` is always the Rollout's own namespace, so a
    /// ClusterAnalysisTemplate author can guarantee that tenants read series
    /// of their own namespace only. The check does not parse PromQL: a query
    /// that also reads other series (`... or other_metric`) is the author's
    /// to avoid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_namespace: bool,
    #[schemars(length(min = 1))]
    pub metrics: Vec<MetricSpec>,
}

/// The same template, shared by every namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "siskin.io",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    shortname = "scat"
)]
#[kube(derive = "PartialEq")]
pub struct ClusterAnalysisTemplateSpec {
    #[serde(flatten)]
    pub template: AnalysisTemplateSpec,
}

/// An argument of the template's queries, `{{args.NAME}}`.
///
/// Its value, from the template or the Rollout, may hold only letters,
/// digits and `_ . : / @ -` unless the argument is `unrestricted`; any other
/// value makes the analysis inconclusive, naming the argument.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.pinned) || !self.pinned || has(self.value)")
    .message("a pinned argument needs a value"))]
pub struct TemplateArg {
    pub name: String,
    /// The default, or with `pinned` the only value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Rollouts cannot set this argument. A Rollout whose `analysis.args`
    /// gives it another value gets an inconclusive analysis whose detail
    /// says the argument is pinned by the template. The template's value is
    /// not quietly used instead: the Rollout's author would think their own
    /// value was in force. Restating the pinned value is allowed. Pin what
    /// scopes the series a tenant may read (a job, a cluster label).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    /// Lifts the character rule for this argument: its value may hold
    /// anything, and is escaped as a PromQL string. The queries may then use
    /// it only inside double quotes. In a regex matcher (`=~`) the value is
    /// still a regex: a Rollout can set `.*` and match every series the
    /// matcher's other labels allow. Prefer `pinned` with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unrestricted: bool,
}

impl AnalysisTemplateSpec {
    /// The query variables for a Rollout: the built-ins `{{namespace}}` and
    /// `{{rollout}}` from the Rollout itself, and `{{args.NAME}}` for every
    /// argument. `template` names the template in errors.
    ///
    /// Arguments live under `args.`, so no argument, whatever its name, can
    /// replace a built-in.
    pub fn variables(
        &self,
        template: &str,
        (namespace, rollout): (&str, &str),
        given: &[AnalysisArg],
    ) -> Result<Variables, TemplateError> {
        if self.require_namespace {
            self.check_namespace_required(template)?;
        }
        let mut vars = Variables::default()
            .with("namespace", namespace)
            .with("rollout", rollout);
        for arg in &self.args {
            let error = |kind| TemplateError::Argument {
                template: template.into(),
                arg: arg.name.clone(),
                kind,
            };
            let from_rollout = given.iter().find(|a| a.name == arg.name).map(|a| &a.value);
            let value = match (&arg.value, from_rollout) {
                (None, _) if arg.pinned => return Err(error(ArgumentError::PinnedWithoutValue)),
                (Some(pinned), Some(other)) if arg.pinned && pinned != other => {
                    return Err(error(ArgumentError::Pinned));
                }
                (_, Some(value)) | (Some(value), None) => value,
                (None, None) => return Err(error(ArgumentError::Missing)),
            };
            let name = format!("args.{}", arg.name);
            vars = if arg.unrestricted {
                vars.with_unrestricted(&name, value)
            } else {
                query::check_value(&name, value).map_err(|e| error(ArgumentError::Unsafe(e)))?;
                vars.with(&name, value)
            };
        }
        Ok(vars)
    }

    fn check_namespace_required(&self, template: &str) -> Result<(), TemplateError> {
        for metric in &self.metrics {
            // A web provider's queries are JSONPaths into its reply: what
            // it reads is chosen by its request.
            let scoped = match &metric.provider.web {
                Some(web) => vec![web_request_scoped(web)],
                None => metric.queries(),
            };
            for (field, text) in scoped {
                let used = if field == WEB_URL {
                    query::uses_in_url(text, "namespace")
                } else {
                    query::uses_in_string(text, "namespace")
                };
                if !used {
                    return Err(TemplateError::NamespaceNotUsed {
                        template: template.into(),
                        metric: metric.name.clone(),
                        field,
                    });
                }
            }
        }
        Ok(())
    }
}

const WEB_URL: &str = "provider.web.url";

/// What must select `{{namespace}}` in a web provider's request: its body
/// when it has one (a query language inside a JSON string), else its URL.
fn web_request_scoped(web: &WebProvider) -> (&'static str, &str) {
    match &web.body {
        Some(body) => ("provider.web.body", body.as_str()),
        None => (WEB_URL, web.url.as_str()),
    }
}

/// Why a template's variables could not be built for a Rollout.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{template}, argument {arg:?}: {kind}")]
    Argument {
        template: String,
        arg: String,
        kind: ArgumentError,
    },
    #[error(
        "{template} requires {{{{namespace}}}} in every query, and the {field} query of metric \
         {metric:?} does not use it in a quoted string; the template is refused"
    )]
    NamespaceNotUsed {
        template: String,
        metric: String,
        field: &'static str,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    #[error("no value: the template gives none and the Rollout's analysis.args does not set it")]
    Missing,
    #[error("pinned by the template, so the Rollout's analysis.args cannot set it")]
    Pinned,
    #[error("pinned, but the template gives it no value")]
    PinnedWithoutValue,
    #[error("{0}")]
    Unsafe(RenderError),
}

/// One metric: a provider, queries of one kind, and a judge.
///
/// Queries are evaluated once per arm. Variables: `{{namespace}}`,
/// `{{service}}` (the arm's Service: `<service>-stable` or `<service>-canary`),
/// `{{revision}}` (the arm's revision), `{{rollout}}`, `{{args.NAME}}`, and
/// the analysis' window: `{{since}}` (when the analysis of this canary
/// began) and `{{now}}` in Unix seconds, `{{sinceMillis}}`, `{{nowMillis}}`.
/// Their values may hold only letters, digits and `_ . : / @ -`, except
/// unrestricted arguments; anything else leaves the metric inconclusive.
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

impl MetricSpec {
    /// Every query of the metric, with the field it is in.
    pub fn queries(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(q) = &self.counts {
            out.extend([("counts.total", q.total.as_str()), ("counts.errors", q.errors.as_str())]);
        }
        if let Some(q) = &self.histogram {
            out.push(("histogram.buckets", q.buckets.as_str()));
        }
        if let Some(q) = &self.value {
            out.push(("value.query", q.query.as_str()));
        }
        out
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    const NAME: &str = "ClusterAnalysisTemplate requests";
    const ROLLOUT: (&str, &str) = ("shop", "cart");

    fn template(args: Vec<TemplateArg>, query: &str) -> AnalysisTemplateSpec {
        AnalysisTemplateSpec {
            args,
            require_namespace: false,
            metrics: vec![MetricSpec {
                name: "errors".into(),
                provider: ProviderSpec {
                    prometheus: None,
                    web: None,
                },
                counts: None,
                histogram: None,
                value: Some(ValueQuery { query: query.into() }),
                judge: JudgeSpec::default(),
            }],
        }
    }

    fn arg(name: &str, value: Option<&str>) -> TemplateArg {
        TemplateArg {
            name: name.into(),
            value: value.map(Into::into),
            pinned: false,
            unrestricted: false,
        }
    }

    fn given(name: &str, value: &str) -> AnalysisArg {
        AnalysisArg {
            name: name.into(),
            value: value.into(),
        }
    }

    fn argument_error(result: Result<Variables, TemplateError>) -> (String, ArgumentError) {
        match result {
            Err(TemplateError::Argument { arg, kind, .. }) => (arg, kind),
            other => panic!("expected an argument error, got {other:?}"),
        }
    }

    #[test]
    fn a_rollout_argument_overrides_a_default() {
        let spec = template(vec![arg("job", Some("traefik"))], r#"x{job="{{args.job}}"}"#);
        let vars = spec.variables(NAME, ROLLOUT, &[given("job", "envoy")]);
        let query = vars.map(|v| v.render(r#"x{job="{{args.job}}"}"#));
        assert_eq!(query, Ok(Ok(r#"x{job="envoy"}"#.to_string())));
    }

    #[test]
    fn an_argument_cannot_close_the_string_and_add_a_selector() {
        let spec = template(vec![arg("job", Some("traefik"))], r#"x{job="{{args.job}}"}"#);
        let result = spec.variables(NAME, ROLLOUT, &[given("job", r#"x"}) or vector(1) #"#)]);
        let (name, kind) = argument_error(result);
        assert_eq!(name, "job");
        assert!(matches!(kind, ArgumentError::Unsafe(_)), "{kind:?}");
    }

    #[test]
    fn a_default_value_follows_the_same_rule() {
        let spec = template(vec![arg("job", Some("a|b"))], r#"x{job=~"{{args.job}}"}"#);
        let (_, kind) = argument_error(spec.variables(NAME, ROLLOUT, &[]));
        assert!(matches!(kind, ArgumentError::Unsafe(_)), "{kind:?}");
    }

    #[test]
    fn an_unrestricted_argument_takes_any_value_and_is_escaped() {
        let mut path = arg("path", None);
        path.unrestricted = true;
        let spec = template(vec![path], r#"x{path="{{args.path}}"}"#);
        let vars = spec.variables(NAME, ROLLOUT, &[given("path", r#"/a"b"#)]);
        let query = vars.map(|v| v.render(r#"x{path="{{args.path}}"}"#));
        assert_eq!(query, Ok(Ok(r#"x{path="/a\"b"}"#.to_string())));
    }

    #[test]
    fn a_pinned_argument_cannot_be_overridden_by_a_rollout() {
        let mut job = arg("job", Some("traefik"));
        job.pinned = true;
        let spec = template(vec![job], r#"x{job="{{args.job}}"}"#);
        let result = spec.variables(NAME, ROLLOUT, &[given("job", "other")]);
        let message = result.clone().map(|_| ()).unwrap_err().to_string();
        assert_eq!(argument_error(result), ("job".into(), ArgumentError::Pinned));
        assert!(message.contains("pinned by the template"), "{message}");
        assert!(message.contains(NAME), "{message}");
    }

    #[test]
    fn a_pinned_argument_may_be_restated_with_its_own_value() {
        let mut job = arg("job", Some("traefik"));
        job.pinned = true;
        let spec = template(vec![job], r#"x{job="{{args.job}}"}"#);
        assert!(spec.variables(NAME, ROLLOUT, &[given("job", "traefik")]).is_ok());
    }

    #[test]
    fn a_pinned_argument_without_a_value_is_refused() {
        let mut job = arg("job", None);
        job.pinned = true;
        let spec = template(vec![job], r#"x{job="{{args.job}}"}"#);
        let result = spec.variables(NAME, ROLLOUT, &[given("job", "traefik")]);
        assert_eq!(argument_error(result).1, ArgumentError::PinnedWithoutValue);
    }

    #[test]
    fn an_argument_with_no_value_anywhere_is_refused() {
        let spec = template(vec![arg("job", None)], r#"x{job="{{args.job}}"}"#);
        assert_eq!(
            argument_error(spec.variables(NAME, ROLLOUT, &[])).1,
            ArgumentError::Missing
        );
    }

    #[test]
    fn an_arg_named_namespace_does_not_change_the_namespace() {
        let query = r#"x{namespace="{{namespace}}",rollout="{{rollout}}"}"#;
        let spec = template(
            vec![arg("namespace", Some("shop")), arg("rollout", Some("cart"))],
            query,
        );
        let args = [given("namespace", "payments"), given("rollout", "ledger")];
        let vars = spec.variables(NAME, ROLLOUT, &args);
        let rendered = vars.map(|v| v.render(query));
        assert_eq!(rendered, Ok(Ok(r#"x{namespace="shop",rollout="cart"}"#.to_string())));
    }

    #[test]
    fn a_template_requiring_the_namespace_refuses_a_query_without_it() {
        for query in ["sum(x)", "sum(x) # {{namespace}}", r#"x{job="{{args.namespace}}"}"#] {
            let mut spec = template(vec![arg("namespace", Some("shop"))], query);
            spec.require_namespace = true;
            let result = spec.variables(NAME, ROLLOUT, &[]);
            let expected = TemplateError::NamespaceNotUsed {
                template: NAME.into(),
                metric: "errors".into(),
                field: "value.query",
            };
            assert_eq!(result, Err(expected), "{query}");
        }
    }

    #[test]
    fn a_template_requiring_the_namespace_accepts_queries_scoped_to_it() {
        let mut spec = template(vec![], r#"sum(x{namespace="{{ namespace }}"})"#);
        spec.require_namespace = true;
        assert!(spec.variables(NAME, ROLLOUT, &[]).is_ok());
    }

    #[test]
    fn a_web_template_requiring_the_namespace_checks_its_request() {
        let web = |url: &str, body: Option<&str>| {
            let mut spec = template(vec![], "$.total");
            spec.require_namespace = true;
            spec.metrics[0].provider.web = Some(WebProvider {
                url: url.into(),
                method: if body.is_some() {
                    WebMethod::Post
                } else {
                    WebMethod::Get
                },
                body: body.map(Into::into),
                connection: ConnectionSpec::default(),
            });
            spec.variables(NAME, ROLLOUT, &[])
        };
        assert!(web("https://x/q?ns={{namespace}}", None).is_ok());
        assert!(web("https://x/q", Some(r#"{"q": "ns = '{{namespace}}'"}"#)).is_ok());
        let refused = |field| {
            Err(TemplateError::NamespaceNotUsed {
                template: NAME.into(),
                metric: "errors".into(),
                field,
            })
        };
        assert_eq!(web("https://x/q#{{namespace}}", None), refused("provider.web.url"));
        assert_eq!(
            web("https://x/q?ns={{namespace}}", Some(r#"{"q": 1}"#)),
            refused("provider.web.body")
        );
    }

    #[test]
    fn a_pinned_argument_needs_a_value_in_the_crd() {
        let crd = serde_json::to_value(ClusterAnalysisTemplate::crd()).unwrap_or_default();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let arg = &schema["properties"]["spec"]["properties"]["args"]["items"];
        let rules = arg["x-kubernetes-validations"].to_string();
        assert!(rules.contains("has(self.value)"), "{arg}");
    }

    /// The templates under analysis-templates/ read only the Rollout's
    /// namespace, and say so.
    #[test]
    fn shipped_templates_require_the_namespace() {
        let files = [
            include_str!("../../analysis-templates/demo-app.yaml"),
            include_str!("../../analysis-templates/envoy.yaml"),
            include_str!("../../analysis-templates/istio.yaml"),
            include_str!("../../analysis-templates/traefik-gateway-api.yaml"),
            include_str!("../../analysis-templates/datadog.yaml"),
            include_str!("../../analysis-templates/newrelic.yaml"),
            include_str!("../../analysis-templates/cloudwatch.yaml"),
        ];
        let mut seen = 0;
        for doc in files.iter().flat_map(|f| serde_yaml::Deserializer::from_str(f)) {
            let template = ClusterAnalysisTemplate::deserialize(doc).expect("a shipped template deserializes");
            let spec = &template.spec.template;
            assert!(
                spec.require_namespace,
                "{:?} sets requireNamespace",
                template.metadata.name
            );
            assert!(spec.variables("shipped", ROLLOUT, &[]).is_ok());
            seen += 1;
        }
        assert!(seen >= 8, "every document was read: {seen}");
    }
}
