//! Metric providers: one trait, one file per implementation, and one
//! registry ([`provider_for`], in `registry.rs`): adding a provider is a new
//! file and a line in its `PROVIDERS` (and its field in the template's
//! `provider`).

pub mod connection;
mod error;
pub mod prometheus;
mod registry;
pub mod web;

use futures::future::BoxFuture;

pub use connection::{Connection, SecretValues};
pub use error::ProviderError;
pub use registry::provider_for;

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

/// A non-2xx status as a cause: refused credentials are named as such.
pub fn explain_status(code: u16) -> String {
    match code {
        401 => "HTTP 401: the credentials were refused".into(),
        403 => "HTTP 403: the credentials may not read this".into(),
        _ => format!("HTTP {code}"),
    }
}
