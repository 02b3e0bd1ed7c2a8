//! Webhooks, the I/O half: POSTs the calls the engine has asked for and
//! hands the answers back to it. Calls go through [`Egress`]: under the
//! destination policy, with capped timeouts and reads, and only while an
//! outbound slot is free, so endpoints that never answer hold a bounded
//! share of the controller and never every reconcile.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kube::ResourceExt;
use serde_json::json;

use crate::api::{Rollout, WebhookType};
use crate::egress::{Egress, Purpose};
use crate::plan::{HookCall, HookOutcome, HookResult, hook_timeout};

/// How soon a Rollout whose calls were deferred looks again.
pub const DEFERRED_RETRY: Duration = Duration::from_secs(2);

/// The answers of the calls made; calls that found no free outbound slot
/// have none (the engine keeps waiting for them) and set `deferred`.
#[derive(Debug, Default)]
pub struct HookAnswers {
    pub results: Vec<HookResult>,
    pub deferred: bool,
}

/// Makes the due calls at once, as far as outbound slots are free.
pub async fn call_all(egress: &Egress, rollout: &Rollout, calls: Vec<HookCall>) -> HookAnswers {
    let ns = rollout.namespace().unwrap_or_default();
    let mut deferred = false;
    let mut admitted = Vec::new();
    for call in calls {
        match egress.try_slot(Purpose::Webhook, &ns) {
            Some(slot) => admitted.push((call, slot)),
            None => {
                tracing::debug!(webhook = %call.name, "no outbound slot free: the call is made on a later reconcile");
                deferred = true;
            }
        }
    }
    let results = join_all(admitted.into_iter().map(|(call, slot)| async move {
        // The slot is held until the answer is in: only a binding used
        // inside the future lives as long as the call.
        let _held = slot;
        let body = json!({
            "name": rollout.name_any(),
            "namespace": rollout.namespace(),
            "webhook": call.name,
            "type": call.type_.as_str(),
            "revision": call.revision,
            "stableRevision": call.stable_revision,
            "step": call.step,
            "metadata": call.metadata,
        });
        let outcome = post(egress, Purpose::Webhook, &call.url, call.timeout, &body).await;
        tracing::info!(webhook = %call.name, r#type = call.type_.as_str(), ?outcome, "webhook called");
        HookResult {
            name: call.name,
            outcome,
        }
    }))
    .await;
    HookAnswers { results, deferred }
}

async fn post(
    egress: &Egress,
    purpose: Purpose,
    url: &str,
    timeout: Duration,
    body: &serde_json::Value,
) -> HookOutcome {
    match egress.post_json(purpose, url, timeout, body).await {
        Ok(answer) if answer.is_success() => HookOutcome::Yes { code: answer.code },
        Ok(answer) => HookOutcome::No {
            code: answer.code,
            body: egress.shown_body(&answer),
        },
        Err(failure) => HookOutcome::Failed {
            message: egress.explain(&failure),
        },
    }
}

/// Tells the Rollout's `event` webhooks of one Event, without waiting for
/// them: an Event is already recorded in the cluster. A call that finds no
/// free outbound slot is dropped (and counted), so Events never pile up
/// tasks behind endpoints that do not answer.
pub fn forward_event(egress: &Arc<Egress>, rollout: &Rollout, type_: &str, reason: &str, note: &str) {
    let ns = rollout.namespace().unwrap_or_default();
    for hook in rollout.spec.webhooks.iter().filter(|w| w.type_ == WebhookType::Event) {
        let Some(slot) = egress.try_slot(Purpose::EventWebhook, &ns) else {
            tracing::debug!(webhook = %hook.name, %reason, "no outbound slot free: event webhook dropped");
            continue;
        };
        let timeout = hook_timeout(hook);
        let body = json!({
            "name": rollout.name_any(),
            "namespace": rollout.namespace(),
            "webhook": hook.name,
            "type": "event",
            "eventType": type_,
            "reason": reason,
            "message": note,
            "metadata": hook.metadata,
        });
        let (egress, url) = (egress.clone(), hook.url.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let HookOutcome::Failed { message } = post(&egress, Purpose::EventWebhook, &url, timeout, &body).await {
                tracing::warn!(%url, %message, "event webhook failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::{DestinationPolicy, EgressSettings, OutboundCounters};

    fn rollout(ns: &str, hooks: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "siskin.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {
                "replicas": 1,
                "service": {"name": "app", "port": 80},
                "template": {"spec": {"containers": [{"name": "app", "image": "app"}]}},
                "strategy": {"canary": {"steps": [{"weight": 10}]}},
                "webhooks": hooks,
            },
        }))
        .expect("a valid Rollout")
    }

    fn call(name: &str, url: &str) -> HookCall {
        HookCall {
            name: name.into(),
            type_: WebhookType::Rollout,
            url: url.into(),
            timeout: Duration::from_secs(3600),
            revision: "r2".into(),
            stable_revision: Some("r1".into()),
            step: Some(0),
            metadata: Default::default(),
        }
    }

    fn egress(global: usize, per_namespace: usize) -> (Egress, OutboundCounters) {
        let counters = OutboundCounters::default();
        let settings = EgressSettings {
            policy: DestinationPolicy::new(vec!["127.0.0.0/8".parse().expect("a CIDR")], vec![], false),
            outbound_concurrency: global,
            outbound_per_namespace: per_namespace,
            ..EgressSettings::default()
        };
        (Egress::new(&settings, counters.clone()), counters)
    }

    #[tokio::test]
    async fn calls_beyond_the_namespace_share_are_deferred_without_an_answer() {
        let (egress, counters) = egress(8, 1);
        let _held = egress.try_slot(Purpose::Webhook, "team").expect("a free slot");
        let started = std::time::Instant::now();
        // Nothing listens there: a call that went out would fail, not hang.
        let answers = call_all(
            &egress,
            &rollout("team", json!([])),
            vec![call("load", "http://127.0.0.1:9/")],
        )
        .await;
        assert!(answers.deferred);
        assert!(answers.results.is_empty(), "the engine sees no answer yet");
        assert!(started.elapsed() < Duration::from_millis(500), "nothing waited");
        assert_eq!(counters.deferred(Purpose::Webhook), 1);
    }

    /// The slot must be held for as long as the call is in flight, or a
    /// namespace's endpoints that never answer would hold every reconcile.
    #[tokio::test]
    async fn a_call_in_flight_holds_its_slot_until_it_is_answered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("address"));
        // Accepts connections and never answers.
        let server = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let (egress, counters) = egress(8, 1);
        let egress = Arc::new(egress);
        let hanging = {
            let (egress, url) = (egress.clone(), url.clone());
            tokio::spawn(async move { call_all(&egress, &rollout("team", json!([])), vec![call("a", &url)]).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = call_all(&egress, &rollout("team", json!([])), vec![call("b", &url)]).await;
        assert!(second.deferred, "the first call still holds the namespace's one slot");
        assert_eq!(counters.deferred(Purpose::Webhook), 1);
        hanging.abort();
        server.abort();
    }

    #[tokio::test]
    async fn a_denied_webhook_fails_naming_the_rule() {
        let (egress, _) = egress(8, 4);
        let answers = call_all(
            &egress,
            &rollout("team", json!([])),
            vec![call("meta", "http://169.254.169.254/")],
        )
        .await;
        assert!(!answers.deferred);
        let [HookResult { outcome, .. }] = answers.results.as_slice() else {
            panic!("one answer: {answers:?}");
        };
        let HookOutcome::Failed { message } = outcome else {
            panic!("a failure: {outcome:?}");
        };
        assert!(message.contains("link-local (169.254.0.0/16)"), "{message}");
    }

    #[tokio::test]
    async fn event_webhooks_beyond_the_free_slots_are_dropped() {
        let (egress, counters) = egress(1, 1);
        let egress = Arc::new(egress);
        let _held = egress.try_slot(Purpose::Webhook, "team").expect("a free slot");
        let hooks = json!([
            {"name": "a", "type": "event", "url": "http://127.0.0.1:9/"},
            {"name": "b", "type": "event", "url": "http://127.0.0.1:9/"},
        ]);
        forward_event(&egress, &rollout("team", hooks), "Normal", "Progressing", "step 1");
        assert_eq!(counters.deferred(Purpose::EventWebhook), 2);
    }
}
