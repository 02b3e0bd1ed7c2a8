//! The one place that knows every metric provider.

use super::{MetricProvider, ProviderError, ProviderInput, prometheus, web};

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
