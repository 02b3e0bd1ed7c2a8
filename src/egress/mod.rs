//! Every outbound HTTP call a tenant chooses the destination of: webhooks
//! (Rollouts) and metric queries (analysis templates). One controller
//! serves every Rollout of the cluster, so such a call must not reach what
//! the controller can but the tenant should not ([`DestinationPolicy`]),
//! nor hold the controller: waits and reads are capped, and calls in flight
//! are limited in all and per namespace ([`OutboundSlots`]).

mod client;
pub mod policy;
pub mod slots;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

pub use client::{CONNECT_TIMEOUT, Failure, TlsOptions};
pub use policy::{DestinationPolicy, Refusal};
pub use slots::{OutboundSlots, Slot};

/// How long a metric query waits for a free slot before its metric counts
/// as missing data for this evaluation.
pub const METRIC_SLOT_WAIT: Duration = Duration::from_secs(2);

/// What a call is for; each purpose has its own caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A gate or notification webhook of a Rollout.
    Webhook,
    /// A Rollout's `event` webhook, told of one Event.
    EventWebhook,
    /// An instant query of an analysis template's metric provider.
    MetricQuery,
}

impl Purpose {
    /// The longest a call may take, whatever it asks for.
    pub fn timeout_cap(self) -> Duration {
        match self {
            Purpose::Webhook | Purpose::EventWebhook => Duration::from_secs(30),
            Purpose::MetricQuery => Duration::from_secs(10),
        }
    }

    /// The most of an answer's body that is read.
    pub fn body_cap(self) -> usize {
        match self {
            Purpose::Webhook | Purpose::EventWebhook => 4 * 1024,
            Purpose::MetricQuery => 256 * 1024,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Webhook => "webhook",
            Purpose::EventWebhook => "event_webhook",
            Purpose::MetricQuery => "metric_query",
        }
    }
}

/// The operator's settings for tenant calls.
#[derive(Clone, Debug)]
pub struct EgressSettings {
    pub policy: DestinationPolicy,
    /// Whether answer bodies and low-level error causes may reach status
    /// and Events (they can hold whatever the called service returns).
    pub reflect_response_bodies: bool,
    /// Tenant calls in flight at once, in all.
    pub outbound_concurrency: usize,
    /// Tenant calls in flight at once for the Rollouts of one namespace.
    pub outbound_per_namespace: usize,
}

impl Default for EgressSettings {
    fn default() -> Self {
        EgressSettings {
            policy: DestinationPolicy::default(),
            reflect_response_bodies: false,
            outbound_concurrency: 16,
            outbound_per_namespace: 4,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    kind: &'static str,
    rule: &'static str,
}

/// Counters of tenant calls not made; registered with the controller's
/// metrics (`siskin_outbound_deferred_total`, `siskin_outbound_refused_total`).
#[derive(Clone, Debug, Default)]
pub struct OutboundCounters {
    deferred: Family<KindLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
}

impl OutboundCounters {
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "outbound_deferred",
            "Tenant calls not made for want of a free outbound slot (webhooks are called later, Event webhooks dropped, metrics read as missing)",
            self.deferred.clone(),
        );
        registry.register(
            "outbound_refused",
            "Tenant calls refused by the destination policy, by rule",
            self.refused.clone(),
        );
    }

    pub fn deferred(&self, purpose: Purpose) -> u64 {
        self.deferred
            .get_or_create(&KindLabels { kind: purpose.as_str() })
            .get()
    }

    pub fn refused(&self, purpose: Purpose, rule: &'static str) -> u64 {
        self.refused
            .get_or_create(&RefusedLabels {
                kind: purpose.as_str(),
                rule,
            })
            .get()
    }
}

/// An HTTP answer: its status and what was read of its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    /// At most the purpose's body cap; empty when the body was not needed.
    pub body: Vec<u8>,
    /// Whether `body` is the whole body.
    pub complete: bool,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// A call with the caller's method, headers and TLS trust.
#[derive(Clone, Debug)]
pub struct OutboundRequest {
    pub url: String,
    /// `None` is a GET; `Some` a POST of this JSON body.
    pub body: Option<Vec<u8>>,
    /// Sent as given. Values may be credentials: they are marked sensitive
    /// and never reach a message.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub tls: TlsOptions,
}

/// Clients with a template's TLS trust, kept for reuse: building one loads
/// its roots. Bounded: beyond it the cache starts over.
const TLS_CLIENTS: usize = 32;

/// The one client for tenant calls, with its policy, caps and slots.
pub struct Egress {
    client: reqwest::Client,
    tls_clients: std::sync::Mutex<std::collections::HashMap<TlsOptions, reqwest::Client>>,
    policy: Arc<DestinationPolicy>,
    slots: OutboundSlots,
    reflect: bool,
    counters: OutboundCounters,
}

impl Egress {
    pub fn new(settings: &EgressSettings, counters: OutboundCounters) -> Self {
        let policy = Arc::new(settings.policy.clone());
        Egress {
            client: client::build(policy.clone()),
            tls_clients: Default::default(),
            policy,
            slots: OutboundSlots::new(settings.outbound_concurrency, settings.outbound_per_namespace),
            reflect: settings.reflect_response_bodies,
            counters,
        }
    }

    /// A slot for a call from `namespace` if one is free now. `None` is a
    /// call deferred (counted): it is not made now.
    pub fn try_slot(&self, purpose: Purpose, namespace: &str) -> Option<Slot> {
        let slot = self.slots.try_acquire(namespace);
        if slot.is_none() {
            self.count_deferred(purpose);
        }
        slot
    }

    /// Like [`Egress::try_slot`], waiting up to `wait` for a slot.
    pub async fn slot_within(&self, purpose: Purpose, namespace: &str, wait: Duration) -> Option<Slot> {
        let slot = self.slots.acquire_within(namespace, wait).await;
        if slot.is_none() {
            self.count_deferred(purpose);
        }
        slot
    }

    fn count_deferred(&self, purpose: Purpose) {
        self.counters
            .deferred
            .get_or_create(&KindLabels { kind: purpose.as_str() })
            .inc();
    }

    /// POSTs `body` as JSON. A non-2xx answer's body is read (up to the
    /// cap) only when it may be shown.
    pub async fn post_json(
        &self,
        purpose: Purpose,
        url: &str,
        timeout: Duration,
        body: &serde_json::Value,
    ) -> Result<Answer, Failure> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        self.send(purpose, url, timeout, |client, url| {
            client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
        })
        .await
    }

    /// GETs `url`; the body is read up to the cap, and a longer one is
    /// [`Failure::TooLarge`].
    pub async fn get(&self, purpose: Purpose, url: &str, timeout: Duration) -> Result<Answer, Failure> {
        self.send(purpose, url, timeout, |client, url| client.get(url)).await
    }

    /// Makes `request` (a metric query with a template's headers and TLS
    /// trust) under the same policy and caps as every other call.
    pub async fn call(&self, purpose: Purpose, request: OutboundRequest) -> Result<Answer, Failure> {
        let client = self.client_for(&request.tls)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            let invalid = || Failure::InvalidHeader { name: name.clone() };
            let header = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| invalid())?;
            value.set_sensitive(true);
            headers.append(header, value);
        }
        let body = request.body;
        self.send_with(&client, purpose, &request.url, request.timeout, |client, url| {
            let builder = match body {
                None => client.get(url),
                Some(body) => client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body),
            };
            builder.headers(headers)
        })
        .await
    }

    fn client_for(&self, tls: &TlsOptions) -> Result<reqwest::Client, Failure> {
        if *tls == TlsOptions::default() {
            return Ok(self.client.clone());
        }
        let mut clients = self
            .tls_clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(tls) {
            return Ok(client.clone());
        }
        let client = client::build_with_tls(self.policy.clone(), tls)?;
        if clients.len() >= TLS_CLIENTS {
            clients.clear();
        }
        clients.insert(tls.clone(), client.clone());
        Ok(client)
    }

    async fn send(
        &self,
        purpose: Purpose,
        url: &str,
        timeout: Duration,
        request: impl FnOnce(&reqwest::Client, reqwest::Url) -> reqwest::RequestBuilder,
    ) -> Result<Answer, Failure> {
        self.send_with(&self.client, purpose, url, timeout, request).await
    }

    async fn send_with(
        &self,
        client: &reqwest::Client,
        purpose: Purpose,
        url: &str,
        timeout: Duration,
        request: impl FnOnce(&reqwest::Client, reqwest::Url) -> reqwest::RequestBuilder,
    ) -> Result<Answer, Failure> {
        let timeout = timeout.min(purpose.timeout_cap());
        let call = async {
            let url = client::check_url(&self.policy, url)?;
            let mut response = request(client, url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| client::classify(&e, timeout))?;
            let code = response.status().as_u16();
            let wanted = match purpose {
                Purpose::MetricQuery => true,
                Purpose::Webhook | Purpose::EventWebhook => !response.status().is_success() && self.reflect,
            };
            if !wanted {
                return Ok(Answer {
                    code,
                    body: Vec::new(),
                    complete: false,
                });
            }
            let body = client::read_bounded(&mut response, purpose.body_cap())
                .await
                .map_err(|e| client::classify(&e, timeout))?;
            if purpose == Purpose::MetricQuery && !body.complete {
                return Err(Failure::TooLarge(purpose.body_cap()));
            }
            Ok(Answer {
                code,
                body: body.bytes,
                complete: body.complete,
            })
        };
        // reqwest's own timeout covers the body too; this one bounds the
        // whole call whatever happens inside.
        let result = tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(Failure::Timeout(timeout)));
        if let Err(Failure::Denied(refusal)) = &result {
            tracing::debug!(kind = purpose.as_str(), %refusal, "outbound call refused");
            self.counters
                .refused
                .get_or_create(&RefusedLabels {
                    kind: purpose.as_str(),
                    rule: refusal.label,
                })
                .inc();
        }
        result
    }

    /// A failure as status and Events may show it: its category, and its
    /// low-level cause only when the operator chose to reflect them.
    pub fn explain(&self, failure: &Failure) -> String {
        match failure.detail() {
            Some(detail) if self.reflect => format!("{failure}: {detail}"),
            _ => failure.to_string(),
        }
    }

    /// An answer's body as status and Events may show it: empty unless the
    /// operator chose to reflect bodies.
    pub fn shown_body(&self, answer: &Answer) -> String {
        if self.reflect {
            String::from_utf8_lossy(&answer.body).into_owned()
        } else {
            String::new()
        }
    }

    /// Whether answer bodies may reach status and Events.
    pub fn reflects_bodies(&self) -> bool {
        self.reflect
    }
}
