//! Metric providers: one trait, one file per implementation, and one
//! registry ([`provider_for`]): adding a provider is a new file and a line
//! in [`PROVIDERS`] (and its field in the template's `provider`).

pub mod connection;
pub mod prometheus;
pub mod web;

use futures::future::BoxFuture;

pub use connection::{Connection, SecretValues};

use crate::analysis::query::Variables;
use crate::api::analysis_template::ProviderSpec;
use crate::egress::Egress;

/// A source of metric values for one arm. Both methods return `Ok(None)`
/// when the query matched nothing and the provider treats that as missing
/// data, which the judges see as inconclusive, never a pass.
pub trait MetricProvider: Send + Sync {
    /// One scalar (the sum of every returned series or matched value).
    fn scalar<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Option<f64>, ProviderError>>;

    /// One value per series, keyed by the value of `label` (e.g. `le`).
    fn by_label<'a>(
        &'a self,
        query: &'a str,
        label: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>, ProviderError>>;
}

/// What every provider is built from: its spec, the egress client, the
/// resolved connection, and the arm's variables.
pub struct ProviderInput<'a> {
    pub spec: &'a ProviderSpec,
    pub egress: &'a Egress,
    pub connection: Connection,
    pub vars: &'a Variables,
}

/// A provider's constructor: `None` when the spec names another provider.
type Constructor = for<'a> fn(ProviderInput<'a>) -> Option<Result<Box<dyn MetricProvider + 'a>, ProviderError>>;

/// Every provider, tried in order.
const PROVIDERS: &[Constructor] = &[prometheus::from_spec, web::from_spec];

/// The provider a metric's spec names, for one arm.
pub fn provider_for(input: ProviderInput<'_>) -> Result<Box<dyn MetricProvider + '_>, ProviderError> {
    let (spec, egress, vars) = (input.spec, input.egress, input.vars);
    for constructor in PROVIDERS {
        let input = ProviderInput {
            spec,
            egress,
            connection: input.connection.clone(),
            vars,
        };
        if let Some(provider) = constructor(input) {
            return provider;
        }
    }
    Err(ProviderError::NotConfigured)
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no provider configured")]
    NotConfigured,
    #[error("provider address {address:?} is not usable: {message}")]
    Address { address: String, message: String },
    #[error("{0}")]
    Connection(String),
    #[error("query {query:?} failed: {message}")]
    Query { query: String, message: String },
}

impl ProviderError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            ProviderError::NotConfigured => "provider_missing",
            ProviderError::Address { .. } => "provider_address",
            ProviderError::Connection(_) => "provider_connection",
            ProviderError::Query { .. } => "provider_query",
        }
    }
}

/// A non-2xx status as a cause: refused credentials are named as such.
pub fn explain_status(code: u16) -> String {
    match code {
        401 => "HTTP 401: the credentials were refused".into(),
        403 => "HTTP 403: the credentials may not read this".into(),
        _ => format!("HTTP {code}"),
    }
}
