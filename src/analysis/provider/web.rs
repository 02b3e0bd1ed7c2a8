//! Any HTTP endpoint answering JSON (Datadog, New Relic, CloudWatch behind a
//! signing proxy, in-house services). The request is the template's, filled
//! with the arm's variables and made once per arm and evaluation; each of
//! the metric's queries is a JSONPath (RFC 9535) into that one reply.
//!
//! It goes through the same egress client as webhooks and Prometheus: the
//! destination policy, a capped timeout and reply size, no redirects.

use futures::FutureExt;
use futures::future::BoxFuture;
use jsonpath_rust::JsonPath;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::{Connection, MetricProvider, ProviderError, ProviderInput, explain_status};
use crate::analysis::query::Variables;
use crate::api::analysis_template::{WebMethod, WebProvider};
use crate::egress::{Egress, Purpose};

pub struct Web<'a> {
    egress: &'a Egress,
    url: String,
    body: Option<Vec<u8>>,
    connection: Connection,
    /// The reply, fetched on first use: every query of the arm reads it.
    reply: OnceCell<Result<Value, String>>,
}

/// The registry's constructor: one provider per arm, its request filled
/// with that arm's variables.
pub fn from_spec(input: ProviderInput<'_>) -> Option<Result<Box<dyn MetricProvider + '_>, ProviderError>> {
    let spec = input.spec.web.as_ref()?;
    let provider = Web::new(input.egress, spec, input.connection, input.vars);
    Some(provider.map(|p| Box::new(p) as Box<dyn MetricProvider>))
}

impl<'a> Web<'a> {
    pub fn new(
        egress: &'a Egress,
        spec: &WebProvider,
        connection: Connection,
        vars: &Variables,
    ) -> Result<Self, ProviderError> {
        let url = vars.render_url(&spec.url).map_err(|e| ProviderError::Address {
            address: spec.url.clone(),
            message: e.to_string(),
        })?;
        let body = match (spec.method, &spec.body) {
            (WebMethod::Get, _) => None,
            (WebMethod::Post, body) => {
                let text = body.as_deref().unwrap_or("");
                let filled = vars
                    .render(text)
                    .map_err(|e| ProviderError::Connection(format!("body: {e}")))?;
                Some(filled.into_bytes())
            }
        };
        Ok(Web {
            egress,
            url,
            body,
            connection,
            reply: OnceCell::new(),
        })
    }

    async fn reply(&self) -> Result<&Value, String> {
        let reply = self
            .reply
            .get_or_init(|| async {
                let request = self.connection.request(self.url.clone(), self.body.clone());
                let answer = self
                    .egress
                    .call(Purpose::MetricQuery, request)
                    .await
                    .map_err(|e| self.egress.explain(&e))?;
                parse_reply(answer.code, &answer.body)
            })
            .await;
        reply.as_ref().map_err(Clone::clone)
    }

    async fn matched(&self, path: &str) -> Result<Vec<Value>, ProviderError> {
        let fail = |message: String| ProviderError::Query {
            query: path.to_string(),
            message,
        };
        let reply = self
            .reply()
            .await
            .map_err(|m| fail(format!("{} {}", self.describe(), m)))?;
        select(reply, path).map_err(fail)
    }

    fn describe(&self) -> String {
        let method = if self.body.is_some() { "POST" } else { "GET" };
        // The URL without its query: that may hold an API key.
        let shown = self.url.split('?').next().unwrap_or_default();
        format!("{method} {shown}:")
    }
}

/// Reads a reply as JSON. A non-2xx status is an error named by its code;
/// the body is never shown (it may echo credentials).
pub fn parse_reply(code: u16, body: &[u8]) -> Result<Value, String> {
    if !(200..300).contains(&code) {
        return Err(explain_status(code));
    }
    serde_json::from_slice(body).map_err(|e| format!("the reply is not JSON ({})", e.classify_name()))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

/// The values `path` selects in `reply`. Selecting nothing is an error: a
/// path that matches nothing is a template that does not fit the reply,
/// not a zero.
pub fn select(reply: &Value, path: &str) -> Result<Vec<Value>, String> {
    let found = reply.query(path).map_err(|e| format!("is not a valid JSONPath: {e}"))?;
    if found.is_empty() {
        return Err("matched nothing in the reply".into());
    }
    Ok(found.into_iter().cloned().collect())
}

/// A number, or a string holding one (Prometheus-style APIs send
/// `"1.5"` so that `NaN` and `+Inf` survive JSON).
pub fn number(value: &Value) -> Result<f64, String> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        let shown: String = value.to_string().chars().take(40).collect();
        format!("matched {shown}, which is not a number")
    })
}

/// The sum of every matched value, each of which must be a number.
pub fn sum(values: &[Value]) -> Result<f64, String> {
    values.iter().map(number).sum()
}

/// Histogram buckets as `(upper bound, cumulative count)`: each matched
/// value is an object `{"0.1": 12, "+Inf": 40}`, a pair `["0.1", 12]`, or
/// an array of such pairs.
pub fn buckets(values: &[Value]) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for value in values {
        match value {
            Value::Object(map) => {
                for (le, count) in map {
                    out.push((le.clone(), number(count)?));
                }
            }
            Value::Array(items) if items.iter().all(Value::is_array) => {
                for item in items {
                    out.push(pair(item)?);
                }
            }
            Value::Array(_) => out.push(pair(value)?),
            other => {
                return Err(number(other)
                    .err()
                    .unwrap_or_else(|| "matched a number, not buckets".into()));
            }
        }
    }
    Ok(out)
}

fn pair(value: &Value) -> Result<(String, f64), String> {
    match value.as_array().map(Vec::as_slice) {
        Some([le, count]) => {
            let le = match le {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok((le, number(count)?))
        }
        _ => Err("a bucket is not a [bound, count] pair".into()),
    }
}

impl MetricProvider for Web<'_> {
    fn scalar<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Option<f64>, ProviderError>> {
        async move {
            let values = self.matched(query).await?;
            let value = sum(&values).map_err(|message| ProviderError::Query {
                query: query.to_string(),
                message,
            })?;
            Ok(Some(value))
        }
        .boxed()
    }

    fn by_label<'a>(
        &'a self,
        query: &'a str,
        _label: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>, ProviderError>> {
        async move {
            let values = self.matched(query).await?;
            buckets(&values).map_err(|message| ProviderError::Query {
                query: query.to_string(),
                message,
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests;
