//! `GET /api/streams` (live streams as JSON) and `GET /healthz`.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::hub::StreamInfo;

#[derive(Serialize)]
pub struct StreamList {
    pub streams: Vec<StreamInfo>,
}

pub async fn streams(State(state): State<AppState>) -> Json<StreamList> {
    Json(StreamList {
        streams: state.hub.list(),
    })
}

pub async fn healthz() -> &'static str {
    "ok\n"
}
