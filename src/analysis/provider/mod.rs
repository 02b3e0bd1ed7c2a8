//! Metric providers: one trait, one file per implementation.

pub mod prometheus;

use futures::future::BoxFuture;

/// A source of metric values. Both methods return `Ok(None)` when the query
/// matched nothing: a state the judges see as missing data, not an error.
pub trait MetricProvider: Send + Sync {
    /// One scalar (the sum of every returned series).
    fn scalar<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Option<f64>, ProviderError>>;

    /// One value per series, keyed by the value of `label` (e.g. `le`).
    fn by_label<'a>(
        &'a self,
        query: &'a str,
        label: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>, ProviderError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider address {address:?} is not usable: {message}")]
    Address { address: String, message: String },
    #[error("query {query:?} failed: {message}")]
    Query { query: String, message: String },
}

impl ProviderError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            ProviderError::Address { .. } => "provider_address",
            ProviderError::Query { .. } => "provider_query",
        }
    }
}
