//! Webhooks, the I/O half: POSTs the calls the engine has asked for and
//! hands the answers back to it. Each call has its own timeout, and calls
//! run inside the one Rollout's reconcile, so a slow hook holds only its
//! own Rollout: the controller reconciles others concurrently.

use std::time::Duration;

use futures::future::join_all;
use kube::ResourceExt;
use serde_json::json;

use crate::api::{Rollout, WebhookType};
use crate::plan::{HookCall, HookOutcome, HookResult, hook_timeout};

/// One HTTP client for every webhook call; each request sets its timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// Makes the due calls at once and returns their answers.
pub async fn call_all(http: &reqwest::Client, rollout: &Rollout, calls: Vec<HookCall>) -> Vec<HookResult> {
    join_all(calls.into_iter().map(|call| async move {
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
        let outcome = post(http, &call.url, call.timeout, &body).await;
        tracing::info!(webhook = %call.name, r#type = call.type_.as_str(), ?outcome, "webhook called");
        HookResult {
            name: call.name,
            outcome,
        }
    }))
    .await
}

async fn post(http: &reqwest::Client, url: &str, timeout: Duration, body: &serde_json::Value) -> HookOutcome {
    let response = http.post(url).timeout(timeout).json(body).send().await;
    match response {
        Ok(response) => {
            let code = response.status().as_u16();
            if response.status().is_success() {
                HookOutcome::Yes { code }
            } else {
                let body = response.text().await.unwrap_or_default();
                HookOutcome::No { code, body }
            }
        }
        Err(e) if e.is_timeout() => HookOutcome::Failed {
            message: format!("no answer within {}s", timeout.as_secs_f64()),
        },
        Err(e) => HookOutcome::Failed {
            message: format!("cannot call {url}: {}", root_cause(&e)),
        },
    }
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Tells the Rollout's `event` webhooks of one Event, without waiting for
/// them: an Event is already recorded in the cluster.
pub fn forward_event(http: &reqwest::Client, rollout: &Rollout, type_: &str, reason: &str, note: &str) {
    for hook in rollout.spec.webhooks.iter().filter(|w| w.type_ == WebhookType::Event) {
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
        let (http, url) = (http.clone(), hook.url.clone());
        tokio::spawn(async move {
            if let HookOutcome::Failed { message } = post(&http, &url, timeout, &body).await {
                tracing::warn!(%url, %message, "event webhook failed");
            }
        });
    }
}
