//! Why a metric could not be read; each carries its metric label.

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
