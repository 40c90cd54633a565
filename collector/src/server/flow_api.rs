//! `GET /api/v1/flows` (`--web.enable-flow-api`): the HTTP side of the flow API whose format
//! [`crate::flows::api`] defines.
//!
//! A request holds a `--web.max-requests` permit (HTTP 503 when none is free) until its body,
//! streamed a bridge at a time, has been sent.

use super::AppState;
use crate::flows::{api, source};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The flow API's body chunks.
const CHUNK: usize = 64 * 1024;

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Handles `GET /api/v1/flows` (query parameters as given).
pub async fn handle(
    app: &AppState,
    query: &[(String, String)],
    deadline: tokio::time::Instant,
    client: Option<std::net::IpAddr>,
) -> Response {
    let q = match api::parse_query(query) {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    // A --web.max-requests permit, held until the body is sent whole (or abandoned).
    let permit = match app.try_permit(client) {
        Ok(p) => p,
        Err(refused) => return refused.into_response(),
    };
    let node = api::node_name();
    let bridges = match crate::sources::openflow::fetch::local_bridges(&app.ovs_rundir).await {
        Ok(b) => b,
        Err(e) => return json_response(StatusCode::OK, api::no_bridges(&node, &e.to_string())),
    };
    let bridges: Vec<_> = bridges
        .into_iter()
        .filter(|(name, _)| q.bridges.is_empty() || q.bridges.contains(&name.as_str()))
        .collect();
    if let Some(missing) = q
        .bridges
        .iter()
        .find(|w| !bridges.iter().any(|(n, _)| n == *w))
    {
        return (
            StatusCode::NOT_FOUND,
            format!("no bridge {missing:?} on this node\n"),
        )
            .into_response();
    }
    let head = api::head(&node);
    let filter = q.filter;

    // The body is streamed, a bridge at a time, in chunks of CHUNK bytes; a chunk the client
    // does not take within --web.write-timeout ends the response with an error.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let aborted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let write_timeout = app.http.write_timeout;
    let aborted_tx = aborted.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let send = |buf: Vec<u8>| {
            let tx = tx.clone();
            let aborted = aborted_tx.clone();
            async move {
                for chunk in buf.chunks(CHUNK) {
                    let bytes = bytes::Bytes::copy_from_slice(chunk);
                    match tokio::time::timeout(write_timeout, tx.send(Ok(bytes))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return false,
                        Err(_) => {
                            aborted.store(true, std::sync::atomic::Ordering::Release);
                            return false;
                        }
                    }
                }
                true
            }
        };
        if !send(head).await {
            return;
        }
        for (i, (name, endpoint)) in bridges.iter().enumerate() {
            let read = source::fetch_openflow(endpoint, deadline)
                .await
                .map_err(|e| e.to_string());
            if let Err(e) = &read {
                tracing::info!(bridge = %name, error = %e, "flow API: cannot read bridge");
            }
            let flows = read.as_deref().map_err(String::as_str);
            if !send(api::bridge(name, flows, filter.as_ref(), i == 0)).await {
                return;
            }
        }
        send(api::TAIL.to_vec()).await;
    });
    let body = axum::body::Body::from_stream(super::ReceiverStream { rx, aborted });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
