//! `/sumdb/{name}/...`: the checksum-database proxy's endpoint (the go command asks
//! `supported` first and, on 200, sends every checksum-database request here).

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

use super::AppState;
use super::error::{HttpError, plain_text};
use super::respond::{Conditions, Freshness, bytes_response, content_type};
use crate::sumdb::SumdbAnswer;

/// Tiles are binary hashes.
const TILE: &str = "application/octet-stream";

/// Answers one checksum-database request; every path that is not allowed or valid is 404.
pub async fn handle(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    let path = uri.path();
    let rest = path.strip_prefix("/sumdb/").unwrap_or(path);
    let (name, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let cond = Conditions {
        method: &method,
        headers: &headers,
    };
    match app.sumdb.answer(name, rest).await? {
        SumdbAnswer::Supported => Ok(plain_text(StatusCode::OK, "")),
        SumdbAnswer::Data {
            bytes,
            immutable,
            tile,
        } => {
            let freshness = if immutable {
                Freshness::Immutable
            } else {
                Freshness::Short(app.list_ttl)
            };
            let kind = if tile { TILE } else { content_type::TEXT };
            bytes_response(&cond, bytes, kind, freshness, None)
        }
    }
}
