use std::time::{Duration, Instant};

use http::{Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use kube::client::Body;
use kube::{Api, Client};
use prometheus_client::metrics::counter::Counter;
use serde_json::json;
use tower::Layer;
use tower_test::mock::Handle;

use super::{Fence, is_fenced};

const NS: &str = "siskin-system";
const LEASE: &str = "siskin-controller";
/// Short, so a test can outwait it.
const WINDOW: Duration = Duration::from_millis(300);

struct Setup {
    fence: Fence,
    refused: Counter,
    client: Client,
    api_server: Handle<Request<Body>, Response<Body>>,
}

fn setup() -> Setup {
    let refused = Counter::default();
    let fence = Fence::new("a", NS, LEASE, WINDOW, refused.clone());
    let (service, api_server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(fence.layer(service), "default");
    Setup {
        fence,
        refused,
        client,
        api_server,
    }
}

fn lease_json(holder: Option<&str>) -> Vec<u8> {
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": LEASE, "namespace": NS, "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    });
    serde_json::to_vec(&lease).expect("lease JSON")
}

fn deployment_json() -> Vec<u8> {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "demo", "namespace": "default"},
    });
    serde_json::to_vec(&deployment).expect("deployment JSON")
}

/// Answers the next request with `body` and returns its method and path.
async fn answer(api_server: &mut Handle<Request<Body>, Response<Body>>, body: Vec<u8>) -> (String, String) {
    let (request, respond) = api_server
        .next_request()
        .await
        .expect("a request reaches the API server");
    respond.send_response(Response::builder().body(Body::from(body)).expect("response"));
    (request.method().to_string(), request.uri().path().to_string())
}

/// What the lease manager sends to renew: a patch of the Lease, answered
/// with the Lease naming `holder`.
async fn renew(setup: &mut Setup, holder: Option<&str>) {
    let leases: Api<Lease> = Api::namespaced(setup.client.clone(), NS);
    let patch = Patch::Merge(json!({"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}}));
    let params = PatchParams::default();
    let (written, _) = tokio::join!(
        leases.patch(LEASE, &params, &patch),
        answer(&mut setup.api_server, lease_json(holder)),
    );
    written.expect("Lease writes always pass the fence");
}

/// Scales a Deployment through the fenced client; `Ok` if it reached the
/// API server.
async fn scale(setup: &mut Setup) -> Result<(), kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(setup.client.clone(), "default");
    let patch = Patch::Merge(json!({"spec": {"replicas": 3}}));
    let params = PatchParams::default();
    let write = deployments.patch("demo", &params, &patch);
    tokio::pin!(write);
    tokio::select! {
        result = &mut write => result.map(|_| ()),
        (method, path) = answer(&mut setup.api_server, deployment_json()) => {
            assert_eq!((method.as_str(), path.as_str()), ("PATCH", "/apis/apps/v1/namespaces/default/deployments/demo"));
            write.await.map(|_| ())
        }
    }
}

#[tokio::test]
async fn writes_are_refused_until_a_renewal_is_confirmed() {
    let mut setup = setup();
    let refused = scale(&mut setup).await.expect_err("no renewal confirmed yet");
    assert!(is_fenced(&refused), "the error says the fence refused: {refused}");
    assert_eq!(setup.refused.get(), 1, "the refusal is counted");
    let route = crate::routing::RoutingError::Kube {
        route: "HTTPRoute demo".into(),
        source: Box::new(refused),
    };
    let error = crate::controller::Error::from(route);
    assert_eq!(
        error.metric_label(),
        "fenced",
        "reconcile reports it under its own label"
    );
    assert_eq!(error.event_reason(), "WriteFenced");
}

#[tokio::test]
async fn writes_pass_while_renewed_and_are_refused_after_the_window() {
    let mut setup = setup();
    renew(&mut setup, Some("a")).await;
    scale(&mut setup).await.expect("renewed just now: the write goes out");
    tokio::time::sleep(WINDOW + Duration::from_millis(50)).await;
    let refused = scale(&mut setup).await.expect_err("the window has passed");
    assert!(is_fenced(&refused));
    renew(&mut setup, Some("a")).await;
    scale(&mut setup).await.expect("renewed again: writes go out again");
    assert_eq!(setup.refused.get(), 1);
}

#[tokio::test]
async fn lease_writes_always_pass() {
    let mut setup = setup();
    assert!(!setup.fence.is_valid());
    renew(&mut setup, None).await;
    let leases: Api<Lease> = Api::namespaced(setup.client.clone(), NS);
    let lease: Lease = serde_json::from_slice(&lease_json(None)).expect("lease");
    let params = Default::default();
    let (created, (method, path)) = tokio::join!(
        leases.create(&params, &lease),
        answer(&mut setup.api_server, lease_json(None)),
    );
    created.expect("creating the Lease passes the fence");
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/siskin-system/leases")
    );
    assert_eq!(setup.refused.get(), 0);
}

#[tokio::test]
async fn reads_always_pass() {
    let mut setup = setup();
    let deployments: Api<Deployment> = Api::namespaced(setup.client.clone(), "default");
    let (read, _) = tokio::join!(
        deployments.get("demo"),
        answer(&mut setup.api_server, deployment_json())
    );
    read.expect("a read passes a closed fence");
    assert_eq!(setup.refused.get(), 0);
}

#[tokio::test]
async fn a_renewal_answered_with_another_holder_closes_the_fence() {
    let mut setup = setup();
    renew(&mut setup, Some("a")).await;
    assert!(setup.fence.is_valid());
    // A renewal that raced a takeover: the server's answer names the new
    // holder.
    renew(&mut setup, Some("b")).await;
    assert!(!setup.fence.is_valid(), "b holds the Lease now");
    assert!(is_fenced(&scale(&mut setup).await.expect_err("fence closed")));
}

#[tokio::test]
async fn a_released_lease_closes_the_fence() {
    let mut setup = setup();
    renew(&mut setup, Some("a")).await;
    renew(&mut setup, None).await;
    assert!(!setup.fence.is_valid());
}

#[test]
fn a_revoked_fence_ignores_renewals_sent_before() {
    let fence = Fence::new("a", NS, LEASE, WINDOW, Counter::default());
    let sent = Instant::now();
    fence.confirm(sent);
    assert!(fence.is_valid_at(sent + WINDOW / 2));
    assert!(!fence.is_valid_at(sent + WINDOW), "valid strictly within the window");
    fence.revoke();
    fence.confirm(sent);
    assert!(
        !fence.is_valid(),
        "a confirmation of a write sent before the loss does not reopen it"
    );
    fence.confirm(Instant::now());
    assert!(fence.is_valid(), "a later renewal does");
}
