//! Prometheus, through its HTTP API (instant queries), on the egress
//! client: the address comes from an analysis template, so the call is
//! under the destination policy and its reply is read only up to a cap.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;

use super::{Connection, MetricProvider, ProviderError, ProviderInput, explain_status};
use crate::egress::{Egress, Purpose};

pub struct Prometheus<'a> {
    egress: &'a Egress,
    /// `{address}/api/v1/query`.
    endpoint: reqwest::Url,
    connection: Connection,
}

/// One series of an instant vector: its labels and its value.
pub type Series = (HashMap<String, String>, f64);

/// The registry's constructor: the same provider serves both arms.
pub fn from_spec(input: ProviderInput<'_>) -> Option<Result<Box<dyn MetricProvider + '_>, ProviderError>> {
    let spec = input.spec.prometheus.as_ref()?;
    let provider = Prometheus::new(input.egress, &spec.address, input.connection);
    Some(provider.map(|p| Box::new(p) as Box<dyn MetricProvider>))
}

impl<'a> Prometheus<'a> {
    pub fn new(egress: &'a Egress, address: &str, connection: Connection) -> Result<Self, ProviderError> {
        let endpoint = format!("{}/api/v1/query", address.trim_end_matches('/'));
        let endpoint = reqwest::Url::parse(&endpoint).map_err(|e| ProviderError::Address {
            address: address.into(),
            message: e.to_string(),
        })?;
        Ok(Prometheus {
            egress,
            endpoint,
            connection,
        })
    }

    async fn vector(&self, query: &str) -> Result<Vec<Series>, ProviderError> {
        let fail = |message: String| ProviderError::Query {
            query: query.to_string(),
            message,
        };
        let mut url = self.endpoint.clone();
        url.query_pairs_mut().append_pair("query", query);
        let request = self.connection.request(url.to_string(), None);
        let answer = self
            .egress
            .call(Purpose::MetricQuery, request)
            .await
            .map_err(|e| fail(self.egress.explain(&e)))?;
        parse_reply(answer.code, &answer.body, self.egress.reflects_bodies()).map_err(fail)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reply {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    #[serde(default)]
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Sample {
    #[serde(default)]
    metric: HashMap<String, String>,
    /// `[unix time, "value"]`: Prometheus sends values as strings so that
    /// `NaN` and `+Inf` survive JSON.
    value: (f64, String),
}

/// Reads an instant-query reply. Anything but a successful instant vector
/// is an error; the server's own error text is shown only when `reflect`.
pub fn parse_reply(code: u16, body: &[u8], reflect: bool) -> Result<Vec<Series>, String> {
    let reply: Option<Reply> = serde_json::from_slice(body).ok();
    let ok = (200..300).contains(&code);
    let reply = match reply {
        Some(reply) if ok && reply.status == "success" => reply,
        Some(reply) => {
            let mut message = if ok { "error".to_string() } else { explain_status(code) };
            if let Some(kind) = reply.error_type {
                message = format!("{message} ({kind})");
            }
            if let Some(text) = reply.error.filter(|_| reflect) {
                message = format!("{message}: {text}");
            }
            return Err(message);
        }
        None if ok => return Err("the reply is not a Prometheus API answer".into()),
        None => return Err(explain_status(code)),
    };
    let data = reply.data.ok_or("the reply has no data")?;
    if data.result_type != "vector" {
        return Err(format!("the result is a {}, not an instant vector", data.result_type));
    }
    let samples: Vec<Sample> =
        serde_json::from_value(data.result).map_err(|e| format!("the vector is malformed: {e}"))?;
    samples
        .into_iter()
        .map(|s| {
            let value = s
                .value
                .1
                .parse::<f64>()
                .map_err(|_| format!("value {:?} is not a number", s.value.1))?;
            Ok((s.metric, value))
        })
        .collect()
}

impl MetricProvider for Prometheus<'_> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `parse_reply` says of a reply it refuses.
    fn refusal(code: u16, body: &[u8], reflect: bool) -> String {
        parse_reply(code, body, reflect).expect_err("a refused reply")
    }

    #[test]
    fn reads_an_instant_vector() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"le":"0.1"},"value":[1712345678.123,"1.5"]},
            {"metric":{"le":"+Inf"},"value":[1712345678.123,"+Inf"]}]}}"#;
        let series = parse_reply(200, body, false).expect("a vector");
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].0.get("le").map(String::as_str), Some("0.1"));
        assert_eq!(series[0].1, 1.5);
        assert_eq!(series[1].1, f64::INFINITY);
    }

    #[test]
    fn an_empty_vector_is_no_series() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_reply(200, body, false), Ok(vec![]));
    }

    #[test]
    fn an_error_reply_is_an_error_with_its_text_only_when_reflected() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        assert_eq!(refusal(400, body, false), "HTTP 400 (bad_data)");
        assert_eq!(refusal(400, body, true), "HTTP 400 (bad_data): parse error at char 5");
        assert_eq!(refusal(200, body, false), "error (bad_data)");
    }

    #[test]
    fn a_range_vector_is_refused() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1712345678,"1"]]}]}}"#;
        assert_eq!(
            refusal(200, body, false),
            "the result is a matrix, not an instant vector"
        );
    }

    #[test]
    fn a_reply_that_is_not_prometheus_json_says_so_without_its_body() {
        assert_eq!(
            refusal(200, b"<html>secret</html>", false),
            "the reply is not a Prometheus API answer"
        );
        assert_eq!(refusal(502, b"<html>secret</html>", true), "HTTP 502");
    }

    #[test]
    fn refused_credentials_are_named() {
        assert_eq!(
            refusal(401, b"Unauthorized", false),
            "HTTP 401: the credentials were refused"
        );
        assert_eq!(
            refusal(403, b"{}", false),
            "HTTP 403: the credentials may not read this"
        );
    }

    #[tokio::test]
    async fn an_oversize_reply_is_a_query_error() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..16 * 1024 {
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        let settings = crate::egress::EgressSettings {
            policy: crate::egress::DestinationPolicy::new(vec!["127.0.0.1/32".parse().expect("a CIDR")], vec![], false),
            ..Default::default()
        };
        let egress = Egress::new(&settings, Default::default());
        let prometheus =
            Prometheus::new(&egress, &format!("http://{addr}"), Connection::default()).expect("an address");
        let error = prometheus.scalar("up").await.expect_err("too large");
        assert!(error.to_string().contains("reply larger than 256 KiB"), "{error}");
    }
}
