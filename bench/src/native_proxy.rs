//! The ceiling for holds through an edge: a native reverse proxy that forwards every
//! request to the ledger over pooled keep-alive connections (hyper's client, as the edge's
//! host uses) and answers with the ledger's response, and nothing else. What it lacks is
//! everything the edge does for a hold — a wasm instance per request, the request's rules,
//! the idempotency record, the rate limit — so no edge on the same cores can forward holds
//! faster than this; holds through it against holds straight at the ledger is what an extra
//! HTTP hop on these cores allows at best.

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::uri::{Authority, Scheme};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

/// Keep-alive connections kept per upstream (the edge's default bound).
const CONNECTIONS_MAX: usize = 256;

pub struct Args {
    pub addr: String,
    /// `http://host:port` of the ledger.
    pub ledger: String,
}

#[derive(Clone)]
struct Upstream {
    client: Client<HttpConnector, Body>,
    authority: Authority,
}

pub async fn serve(args: Args) -> anyhow::Result<()> {
    let ledger: Uri = args.ledger.parse().context("--ledger")?;
    let authority = ledger
        .authority()
        .cloned()
        .context("--ledger needs host:port")?;
    let listener = TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    serve_on(listener, authority).await
}

/// Forwards what `listener` accepts to `upstream` (plain HTTP/1.1).
async fn serve_on(listener: TcpListener, upstream: Authority) -> anyhow::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONNECTIONS_MAX)
        .build(connector);
    let app = Router::new().fallback(forward).with_state(Upstream {
        client,
        authority: upstream,
    });
    // Stopped with SIGTERM by the bench (see `native::serve`).
    axum::serve(listener, app)
        .with_graceful_shutdown(tessera_serving::shutdown_signal())
        .await
        .context("serving")
}

/// The request as it came, to the ledger; the ledger's answer as it came, back.
async fn forward(State(upstream): State<Upstream>, mut request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| axum::http::uri::PathAndQuery::from_static("/"));
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(upstream.authority.clone())
        .path_and_query(path)
        .build();
    match uri {
        Ok(uri) => *request.uri_mut() = uri,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
    match upstream.client.request(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;

    /// An upstream that answers 201 with what it was sent: method, path and query, the
    /// Idempotency-Key and the body.
    async fn echo(request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let key = parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let echoed = format!(
            "{} {} {key} {}",
            parts.method,
            parts.uri,
            String::from_utf8_lossy(&body)
        );
        (StatusCode::CREATED, echoed).into_response()
    }

    async fn listener() -> (TcpListener, Authority) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        (listener, addr.to_string().parse().expect("authority"))
    }

    #[tokio::test]
    async fn forwards_the_request_and_answers_with_the_upstreams_response() {
        let (upstream, upstream_at) = listener().await;
        let app = Router::new().route("/v1/holds", post(echo));
        tokio::spawn(async move { axum::serve(upstream, app).await });
        let (proxy, proxy_at) = listener().await;
        tokio::spawn(serve_on(proxy, upstream_at));
        let client = reqwest::Client::new();
        for n in 0..3 {
            let response = client
                .post(format!("http://{proxy_at}/v1/holds?n={n}"))
                .header("Idempotency-Key", format!("key-{n}"))
                .body(format!("hold {n}"))
                .send()
                .await
                .expect("an answer");
            assert_eq!(response.status(), 201);
            assert_eq!(
                response.text().await.expect("a body"),
                format!("POST /v1/holds?n={n} key-{n} hold {n}")
            );
        }
    }
}
