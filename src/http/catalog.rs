//! `GET /catalog?cursor=...&limit=N`: a page of stored `module@version`s as JSON.
//!
//! Our own endpoint, not part of the GOPROXY protocol, so a bad parameter is a `400` with a
//! plain-text reason. The listing itself lives in `inspect::catalog`.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{HttpError, plain_text};
use crate::inspect::InspectError;
use crate::inspect::catalog::{Cursor, DEFAULT_LIMIT, MAX_LIMIT, page};

/// Answers one catalog page: `{"modules":[{"module","version"}],"next":cursor|null}`.
pub async fn catalog(State(app): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let (cursor, limit) = match parse_query(query.as_deref().unwrap_or("")) {
        Ok(params) => params,
        Err(reason) => return plain_text(StatusCode::BAD_REQUEST, &reason),
    };
    match page(app.stasher.storage(), cursor.as_ref(), limit).await {
        Ok(page) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(page)).into_response(),
        Err(InspectError::Storage(e)) => HttpError::Storage(e).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "catalog failed");
            plain_text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// `cursor` (a key from a previous page's `next`) and `limit` (1 to `MAX_LIMIT`); other
/// parameters are ignored, a repeated one is refused.
fn parse_query(query: &str) -> Result<(Option<Cursor>, usize), String> {
    let mut cursor = None;
    let mut limit = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "cursor" if cursor.is_some() => return Err("cursor given more than once".into()),
            "cursor" => cursor = Some(Cursor::parse(&value).map_err(|e| e.to_string())?),
            "limit" if limit.is_some() => return Err("limit given more than once".into()),
            "limit" => {
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        format!("invalid limit {value:?}: must be a number from 1 to {MAX_LIMIT}")
                    })?;
                limit = Some(n);
            }
            _ => {}
        }
    }
    Ok((cursor, limit.unwrap_or(DEFAULT_LIMIT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(parse_query("").unwrap(), (None, DEFAULT_LIMIT));
        let (cursor, limit) =
            parse_query("limit=2&cursor=example.com%2Fm%2F%40v%2Fv1.0.0.info").unwrap();
        assert_eq!(limit, 2);
        assert_eq!(
            cursor,
            Some(Cursor::parse("example.com/m/@v/v1.0.0.info").unwrap())
        );
        assert_eq!(parse_query("other=1").unwrap(), (None, DEFAULT_LIMIT));
        for bad in [
            "limit=0",
            "limit=10001",
            "limit=x",
            "limit=-1",
            "limit=1&limit=2",
            "cursor=",
            "cursor=a//b",
            "cursor=a&cursor=b",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }
}
