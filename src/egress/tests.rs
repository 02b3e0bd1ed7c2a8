//! Calls to test servers on 127.0.0.1, under a policy that allows loopback
//! explicitly unless the test is about denial.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn loopback_allowed() -> DestinationPolicy {
    DestinationPolicy::new(vec!["127.0.0.0/8".parse().expect("a CIDR")], vec![], false)
}

fn egress(policy: DestinationPolicy, reflect: bool) -> Egress {
    let settings = EgressSettings {
        policy,
        reflect_response_bodies: reflect,
        ..EgressSettings::default()
    };
    Egress::new(&settings, OutboundCounters::default())
}

/// A server on 127.0.0.1 that answers each of at most `connections`
/// connections with `head` and then `body_chunks` chunks of 64 KiB (stopping
/// when the client goes away). Counts the connections it accepted.
async fn server(head: String, body_chunks: usize, connections: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        for _ in 0..connections {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let head = head.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..body_chunks {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// A server that answers one connection with `status` and a body of 1 GiB
/// announced, streamed in 64 KiB chunks as long as anyone reads.
async fn gigabyte_server(status: &str) -> SocketAddr {
    let head = format!("HTTP/1.1 {status}\r\ncontent-length: 1073741824\r\n\r\n");
    server(head, 16 * 1024, 1).await.0
}

/// A server that accepts connections and never answers.
async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..4 {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            held.push(socket);
        }
        std::future::pending::<()>().await;
    });
    addr
}

/// A webhook call with an empty JSON object as its body.
async fn call_webhook(egress: &Egress, url: &str, timeout: Duration) -> Result<Answer, Failure> {
    egress.post_json(Purpose::Webhook, url, timeout, &json!({})).await
}

fn answer(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_gigabyte_error_body_is_cut_at_the_cap_and_the_call_returns_promptly() {
    let addr = gigabyte_server("500 Internal Server Error").await;
    let started = Instant::now();
    let answer = call_webhook(
        &egress(loopback_allowed(), true),
        &format!("http://{addr}/"),
        Duration::from_secs(10),
    )
    .await
    .expect("an answer");
    assert_eq!(answer.code, 500);
    assert_eq!(answer.body.len(), Purpose::Webhook.body_cap());
    assert!(!answer.complete);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_metric_reply_over_the_cap_is_an_error_not_buffered() {
    let addr = gigabyte_server("200 OK").await;
    let started = Instant::now();
    let failure = egress(loopback_allowed(), false)
        .get(Purpose::MetricQuery, &format!("http://{addr}/"), Duration::from_secs(5))
        .await
        .expect_err("too large");
    assert_eq!(failure, Failure::TooLarge(256 * 1024));
    assert_eq!(failure.to_string(), "reply larger than 256 KiB");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_redirect_is_an_answer_and_never_followed() {
    let (target, target_hits) = server(answer("200 OK", "", "ok"), 0, 1).await;
    for location in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://{target}/"),
    ] {
        let (addr, _) = server(answer("302 Found", &format!("location: {location}\r\n"), ""), 0, 1).await;
        let answer = call_webhook(
            &egress(loopback_allowed(), false),
            &format!("http://{addr}/"),
            Duration::from_secs(5),
        )
        .await
        .expect("an answer");
        assert_eq!(answer.code, 302, "redirect to {location}");
        assert!(!answer.is_success());
    }
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect target was never called"
    );
}

#[tokio::test]
async fn the_metadata_address_is_refused_naming_the_rule() {
    let counters = OutboundCounters::default();
    let egress = Egress::new(&EgressSettings::default(), counters.clone());
    let failure = call_webhook(
        &egress,
        "http://169.254.169.254/latest/meta-data/",
        Duration::from_secs(5),
    )
    .await
    .expect_err("refused");
    assert_eq!(
        egress.explain(&failure),
        "denied by destination policy: 169.254.169.254 is link-local (169.254.0.0/16); allow it with --allow-destination"
    );
    assert_eq!(counters.refused(Purpose::Webhook, "link_local"), 1);
}

#[tokio::test]
async fn the_api_server_is_refused_even_inside_an_allowed_cidr() {
    let (api_server, hits) = server(answer("200 OK", "", "{}"), 0, 1).await;
    let mut policy = loopback_allowed();
    policy.api_server.push(api_server);
    let egress = egress(policy, false);
    let failure = egress
        .get(
            Purpose::MetricQuery,
            &format!("http://{api_server}/api/v1/query"),
            Duration::from_secs(5),
        )
        .await
        .expect_err("refused");
    let Failure::Denied(refusal) = &failure else {
        panic!("not a refusal: {failure:?}");
    };
    assert_eq!(refusal.label, "api_server");
    assert!(failure.to_string().contains(&api_server.to_string()), "{failure}");
    // Through a name it is refused too, whatever the port.
    let by_name = egress
        .get(
            Purpose::MetricQuery,
            &format!("http://localhost:{}/", api_server.port()),
            Duration::from_secs(5),
        )
        .await
        .expect_err("refused");
    assert!(matches!(by_name, Failure::Denied(_)), "{by_name:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_connect_by_default() {
    let (addr, hits) = server(answer("200 OK", "", "ok"), 0, 1).await;
    let failure = call_webhook(
        &egress(DestinationPolicy::default(), false),
        &format!("http://localhost:{}/", addr.port()),
        Duration::from_secs(5),
    )
    .await
    .expect_err("refused");
    let Failure::Denied(refusal) = &failure else {
        panic!("not a refusal: {failure:?}");
    };
    assert_eq!(refusal.label, "loopback");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no connection was made");
}

#[tokio::test(start_paused = true)]
async fn an_hour_long_timeout_is_capped() {
    let addr = silent_server().await;
    let failure = call_webhook(
        &egress(loopback_allowed(), false),
        &format!("http://{addr}/"),
        Duration::from_secs(3600),
    )
    .await
    .expect_err("no answer");
    assert_eq!(failure, Failure::Timeout(Purpose::Webhook.timeout_cap()));
    assert_eq!(failure.to_string(), "no answer within 30s");
}

#[tokio::test]
async fn calls_are_deferred_at_once_while_the_slots_are_held() {
    let counters = OutboundCounters::default();
    let settings = EgressSettings {
        outbound_concurrency: 2,
        outbound_per_namespace: 1,
        ..EgressSettings::default()
    };
    let egress = Egress::new(&settings, counters.clone());
    let _a = egress.try_slot(Purpose::Webhook, "a").expect("a free slot");
    let started = Instant::now();
    assert!(egress.try_slot(Purpose::Webhook, "a").is_none(), "a's share is used");
    let _b = egress.try_slot(Purpose::Webhook, "b").expect("a free slot");
    assert!(
        egress.try_slot(Purpose::EventWebhook, "c").is_none(),
        "every slot is used"
    );
    assert!(started.elapsed() < Duration::from_millis(100), "nothing waited");
    assert_eq!(counters.deferred(Purpose::Webhook), 1);
    assert_eq!(counters.deferred(Purpose::EventWebhook), 1);
    assert!(
        egress
            .slot_within(Purpose::MetricQuery, "c", Duration::from_millis(50))
            .await
            .is_none()
    );
    assert_eq!(counters.deferred(Purpose::MetricQuery), 1);
}

#[tokio::test]
async fn answer_bodies_and_error_causes_are_shown_only_when_reflection_is_on() {
    let (addr, _) = server(answer("403 Forbidden", "", "internal secret"), 0, 2).await;
    let url = format!("http://{addr}/");
    for (reflect, shown) in [(false, ""), (true, "internal secret")] {
        let egress = egress(loopback_allowed(), reflect);
        let answer = call_webhook(&egress, &url, Duration::from_secs(5))
            .await
            .expect("an answer");
        assert_eq!(answer.code, 403);
        assert_eq!(egress.shown_body(&answer), shown);
    }
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("address");
    let url = format!("http://{closed}/");
    for (reflect, exact) in [(false, true), (true, false)] {
        let egress = egress(loopback_allowed(), reflect);
        let failure = call_webhook(&egress, &url, Duration::from_secs(5))
            .await
            .expect_err("refused");
        assert!(matches!(failure, Failure::ConnectionRefused { .. }), "{failure:?}");
        assert_eq!(egress.explain(&failure) == "connection refused", exact);
    }
}
