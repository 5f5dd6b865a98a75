//! `GET /flv/{stream}.flv`: HTTP-FLV, one long chunked response per viewer.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{stream_name, ApiError, AppState};

pub async fn play(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let name = file
        .strip_suffix(".flv")
        .ok_or_else(|| ApiError::not_found("FLV URLs end in .flv"))?;
    let name = stream_name(name)?;
    let stream = state
        .hub
        .live(name)
        .ok_or_else(|| ApiError::not_found(format!("no live stream {name:?}")))?;
    let sub = stream
        .subscribe_flv()
        .ok_or_else(|| ApiError::not_found(format!("stream {name:?} has no video yet")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "video/x-flv"),
            (header::CACHE_CONTROL, "no-cache, no-store"),
        ],
        Body::from_stream(sub.into_stream()),
    )
        .into_response())
}
