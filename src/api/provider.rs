//! Where an analysis template's metric is read from: a Prometheus-compatible
//! API or any HTTP endpoint answering JSON, with the connection options both
//! share (credentials and headers from Secrets, a CA, a timeout).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;

/// The label a Secret must carry before an analysis template may use it.
/// The controller can read Secrets wherever templates live; without this
/// opt-in, anyone allowed to write a template could have any Secret of their
/// namespace sent to an address of their choosing.
pub const CREDENTIALS_LABEL: &str = "siskin.io/analysis-credentials";

/// Where a metric is read from: one provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ProviderSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebProvider>,
}

impl ProviderSpec {
    /// The connection options of whichever provider is set.
    pub fn connection(&self) -> Option<&ConnectionSpec> {
        if let Some(p) = &self.prometheus {
            return Some(&p.connection);
        }
        self.web.as_ref().map(|w| &w.connection)
    }
}

/// A Prometheus-compatible query API (Prometheus, Thanos, Mimir, Cortex,
/// Grafana Cloud, VictoriaMetrics): instant queries on `{address}/api/v1/query`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PrometheusProvider {
    /// e.g. `http://prometheus.monitoring:9090`, or with a path prefix
    /// (`https://mimir.example/prometheus`).
    pub address: String,
    #[serde(flatten)]
    pub connection: ConnectionSpec,
}

/// Any HTTP endpoint that answers JSON. The request is made once per arm
/// and evaluation; the metric's queries (`counts.total`, `counts.errors`,
/// `histogram.buckets`, `value.query`) are JSONPath expressions (RFC 9535)
/// into the reply.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebProvider {
    /// An absolute `http://` or `https://` URL; its `{{...}}` variables are
    /// filled per arm and percent-encoded.
    #[schemars(length(min = 1, max = 4096))]
    pub url: String,
    /// Defaults to `GET`.
    #[serde(default)]
    pub method: WebMethod,
    /// The request body (with `POST`), sent as `application/json`; its
    /// `{{...}}` variables are filled per arm, escaped inside strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub body: Option<String>,
    #[serde(flatten)]
    pub connection: ConnectionSpec,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WebMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

/// How to reach a provider: timeout, headers, credentials, TLS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// How long one request may take. Defaults to 5s; at most 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Extra request headers, e.g. a tenant's `X-Scope-OrgID`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// One request header: a literal `value`, or one from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderSpec {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<SecretKey>,
}

/// A key of a Secret. A ClusterAnalysisTemplate's Secrets are read from the
/// controller's own namespace, an AnalysisTemplate's from its namespace; the
/// Secret must carry the label `siskin.io/analysis-credentials: "true"`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKey {
    /// The Secret's name.
    pub secret: String,
    /// The key in the Secret; each use says its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SecretKey {
    /// The key, or `default` when none is given.
    pub fn key_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.key.as_deref().unwrap_or(default)
    }
}

/// Credentials sent with every request: basic auth or a bearer token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct AuthSpec {
    /// A Secret with the keys `username` and `password`, as a
    /// `kubernetes.io/basic-auth` Secret has (`key` is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<SecretKey>,
    /// A Secret's key (default `token`) sent as `Authorization: Bearer ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<SecretKey>,
}

/// TLS for `https://` addresses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A PEM CA bundle in a Secret's key (default `ca.crt`). When set, it is
    /// the only trust: the system's roots are not used for this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretKey>,
    /// Accept any certificate. The connection is encrypted but not
    /// authenticated: anyone on the path can read the credentials.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

impl ConnectionSpec {
    /// Every Secret key the connection uses, with the key's default applied.
    pub fn secret_keys(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |s: &SecretKey, default: &str| out.push((s.secret.clone(), s.key_or(default).to_string()));
        for header in &self.headers {
            if let Some(from) = &header.value_from {
                push(from, "value");
            }
        }
        if let Some(auth) = &self.auth {
            if let Some(basic) = &auth.basic {
                push(
                    &SecretKey {
                        secret: basic.secret.clone(),
                        key: None,
                    },
                    "username",
                );
                push(
                    &SecretKey {
                        secret: basic.secret.clone(),
                        key: None,
                    },
                    "password",
                );
            }
            if let Some(bearer) = &auth.bearer {
                push(bearer, "token");
            }
        }
        if let Some(ca) = self.tls.as_ref().and_then(|t| t.ca.as_ref()) {
            push(ca, "ca.crt");
        }
        out
    }
}
