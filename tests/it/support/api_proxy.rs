//! A plain-HTTP stand-in for the API server between a controller and the
//! real one: it forwards every request and lets a test see, hold or race
//! what the controller sends.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use kube::Client;
use serde_json::json;

use super::TestNamespace;

/// What a test does with the requests passing through an [`ApiProxy`].
pub trait Interception: Send + Sync + 'static {
    /// What `arrived` hands on to `answered` about one request.
    type Ticket: Send;

    /// A request arrived; it is forwarded once this is done.
    fn arrived(&self, method: &Method, path: &str) -> BoxFuture<'_, Self::Ticket>;

    /// The API server answered that request with `status`.
    fn answered(&self, ticket: Self::Ticket, status: u16);
}

/// A running proxy and the kubeconfig that points a controller at it
/// ([`super::controller::Launch::kubeconfig`]). Stops and removes the
/// kubeconfig on drop.
pub struct ApiProxy {
    kubeconfig: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

struct Proxied<I> {
    client: Client,
    interception: Arc<I>,
}

impl ApiProxy {
    /// Serves on a free loopback port, forwarding to the API server with the
    /// test's credentials, and writes a kubeconfig named after `ns`.
    pub async fn start<I: Interception>(ns: &TestNamespace, interception: Arc<I>) -> Self {
        let state = Arc::new(Proxied {
            client: ns.client.clone(),
            interception,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let app = axum::Router::new().fallback(forward::<I>).with_state(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = std::env::var("SISKIN_SANDBOX").unwrap_or_else(|_| "/tmp".into());
        let kubeconfig = PathBuf::from(format!("{dir}/api-proxy-{}.kubeconfig", ns.name));
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": format!("http://127.0.0.1:{port}")}}],
            "users": [{"name": "anonymous", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "anonymous"}}],
            "current-context": "proxy",
        });
        std::fs::write(&kubeconfig, config.to_string()).expect("write kubeconfig");
        ApiProxy { kubeconfig, server }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

async fn forward<I: Interception>(State(proxied): State<Arc<Proxied<I>>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let ticket = proxied.interception.arrived(&parts.method, parts.uri.path()).await;
    for hop in ["host", "content-length", "connection", "transfer-encoding"] {
        parts.headers.remove(hop);
    }
    let forwarded = http::Request::from_parts(parts, kube::client::Body::from(body.to_vec()));
    let response = match proxied.client.send(forwarded).await {
        Ok(response) => response,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    proxied.interception.answered(ticket, response.status().as_u16());
    let (mut parts, body) = response.into_parts();
    for hop in ["connection", "transfer-encoding"] {
        parts.headers.remove(hop);
    }
    Response::from_parts(parts, AxumBody::new(body))
}
