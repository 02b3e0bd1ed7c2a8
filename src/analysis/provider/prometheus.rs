//! Prometheus, through its HTTP API (instant queries).

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_http_query::Client;

use super::{MetricProvider, ProviderError};

/// A query that takes longer than this is a provider failure (inconclusive),
/// not a stalled reconcile.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Prometheus {
    client: Client,
}

impl Prometheus {
    pub fn new(address: &str) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(QUERY_TIMEOUT)
            .build()
            .map_err(|e| ProviderError::Address {
                address: address.into(),
                message: e.to_string(),
            })?;
        let client = Client::from(http, address).map_err(|e| ProviderError::Address {
            address: address.into(),
            message: e.to_string(),
        })?;
        Ok(Prometheus { client })
    }

    async fn vector(
        &self,
        query: &str,
    ) -> Result<Vec<(std::collections::HashMap<String, String>, f64)>, ProviderError> {
        let fail = |message: String| ProviderError::Query {
            query: query.to_string(),
            message,
        };
        let result = self.client.query(query).get().await.map_err(|e| fail(e.to_string()))?;
        let vector = result
            .data()
            .as_vector()
            .ok_or_else(|| fail("the result is not an instant vector".into()))?;
        Ok(vector
            .iter()
            .map(|v| (v.metric().clone(), v.sample().value()))
            .collect())
    }
}

impl MetricProvider for Prometheus {
    fn scalar<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Option<f64>, ProviderError>> {
        async move {
            let series = self.vector(query).await?;
            if series.is_empty() {
                return Ok(None);
            }
            Ok(Some(series.iter().map(|(_, v)| v).sum()))
        }
        .boxed()
    }

    fn by_label<'a>(
        &'a self,
        query: &'a str,
        label: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>, ProviderError>> {
        async move {
            let series = self.vector(query).await?;
            Ok(series
                .into_iter()
                .filter_map(|(m, v)| Some((m.get(label)?.clone(), v)))
                .collect())
        }
        .boxed()
    }
}
