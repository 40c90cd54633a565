//! The read-only JSON flow API the daemon serves with `--web.enable-flow-api`.
//!
//! (Interface stub.)

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Handles `GET /api/v1/flows` (query parameters as given).
pub async fn handle(
    _app: &crate::server::AppState,
    _query: &[(String, String)],
    _deadline: tokio::time::Instant,
) -> Response {
    (StatusCode::NOT_IMPLEMENTED, "not implemented yet\n").into_response()
}
