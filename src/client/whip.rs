//! WHIP publishing (RFC 9725): build a send-only peer connection, POST the offer, apply the
//! answer, pace the media out in real time, and DELETE the session resource when done.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, LOCATION};
use reqwest::{StatusCode, Url};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    PeerConnection, RTCPeerConnectionState, RTCSessionDescription, RTCStatsReportEntry,
    StatsSelector,
};

use super::error::ClientError;
use super::ice_servers::{ice_servers_from_links, IceServer};
use super::lossy::Loss;
use super::pacer::{send_media, Counters, Pacing, SendStats};
use super::peer::{
    add_sendonly_track, build_peer_connection, failed, h264_codec, opus_codec, Events, Ice,
    Outgoing, PeerOptions,
};
use super::simulcast::{accepted_layers, video_mid, LayerOut, SimulcastOut};
use super::source::MediaSource;
use crate::ingest::ice_restart::{fragment_of, restarted};
use crate::ingest::sdpfrag::SdpFrag;

/// How a publisher behaves. `Default` binds ICE to loopback only: a caller that wants to reach
/// another host must say which local address to use.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// Start again from the first frame when the source ends (until `stop`).
    pub looping: bool,
    /// Local UDP addresses to gather host candidates on (`ip:port`, port 0 = ephemeral).
    /// No STUN or TURN server is used unless `ice_servers` names one. Empty: no UDP at all.
    pub udp_addrs: Vec<String>,
    /// Local TCP addresses for ICE over TCP (RFC 6544): the client connects from them to the
    /// server's passive TCP candidates. Empty (the default): no ICE-TCP.
    pub tcp_addrs: Vec<String>,
    /// STUN/TURN servers for ICE. Empty (the default): host candidates only, no server is
    /// ever contacted.
    pub ice_servers: Vec<IceServer>,
    /// Before making the offer, send `OPTIONS` to the endpoint and add the servers of its
    /// `Link: <...>; rel="ice-server"` headers (RFC 9725 §4.6) to `ice_servers`: the ICE agent
    /// needs them before it gathers, so the ones in the 201 come too late for this offer.
    pub discover_ice_servers: bool,
    /// ICE transport policy "relay": only TURN relay candidates are gathered and used, so
    /// media never takes a direct path (needs a TURN server in `ice_servers`).
    pub relay_only: bool,
    /// HTTP client for the WHIP requests; `None` builds a plain one.
    pub http: Option<reqwest::Client>,
    /// Limit for each WHIP HTTP request.
    pub request_timeout: Duration,
    /// Limit for ICE candidate gathering before the offer is sent.
    pub gather_timeout: Duration,
    /// Limit for ICE + DTLS to connect after the answer is applied.
    pub connect_timeout: Duration,
    /// Put a latency stamp (an SEI NAL unit with the wall-clock time, see [`super::sei`]) in
    /// every access unit just before it is sent, for end-to-end latency measurements.
    pub latency_stamps: bool,
    /// Simulated loss, for tests of the receiver's repair: `Some(n)` withholds the first
    /// transmission of one video RTP packet in every `n` (at least 2), after the NACK responder
    /// has buffered it, so a NACK gets it resent (see `lossy.rs`). Counted in
    /// [`SendStats::video_packets_dropped`].
    pub drop_video_packets: Option<u32>,
    /// With `drop_video_packets`: hold each NACK retransmission this long before it goes out,
    /// standing in for the round trip a repair takes on a real path (loopback has none).
    pub resend_delay: Duration,
    /// Simulcast sources ([`MediaSource::with_layers`]): keep sending the layers the answer
    /// did not accept, as a faulty sender would, for tests of the receiver's filter. A
    /// well-behaved sender (the default) sends only the accepted ones.
    pub send_unaccepted_layers: bool,
    /// On [`PublishSession::restart_ice`], gather on new sockets (new local ports), as a
    /// publisher that moved to another network would; otherwise the same sockets are kept and
    /// only the ICE credentials change.
    pub move_on_ice_restart: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            looping: false,
            udp_addrs: vec!["127.0.0.1:0".to_string()],
            tcp_addrs: Vec::new(),
            ice_servers: Vec::new(),
            discover_ice_servers: false,
            relay_only: false,
            http: None,
            request_timeout: Duration::from_secs(10),
            gather_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            latency_stamps: false,
            drop_video_packets: None,
            resend_delay: Duration::ZERO,
            send_unaccepted_layers: false,
            move_on_ice_restart: false,
        }
    }
}

/// One end of a candidate pair, as the stats report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// `host`, `srflx`, `prflx` or `relay`.
    pub kind: String,
    pub address: String,
    pub port: u16,
}

/// The candidate pair ICE is sending on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedPair {
    pub local: Candidate,
    /// webrtc-rs 0.21 reports no stats for remote candidates: `None` then.
    pub remote: Option<Candidate>,
}

/// A live WHIP session. Media flows from a background task until the source ends (unless
/// looping) or [`PublishSession::stop`] is called.
pub struct PublishSession {
    pc: Arc<dyn PeerConnection>,
    http: reqwest::Client,
    bearer: Option<String>,
    location: Url,
    offer_sdp: String,
    answer_sdp: String,
    /// The session resource's entity-tag (RFC 9725 §4.3.1), for `If-Match` on a PATCH.
    etag: Option<String>,
    gathered: watch::Receiver<u32>,
    gather_timeout: Duration,
    connects: Arc<std::sync::atomic::AtomicU32>,
    counters: Arc<Counters>,
    state: watch::Receiver<RTCPeerConnectionState>,
    task: Option<JoinHandle<Result<SendStats, ClientError>>>,
    result: Option<Result<SendStats, String>>,
    request_timeout: Duration,
}

/// Publishes `source` to the WHIP endpoint at `endpoint_url` (RFC 9725 §4.2). Returns once the
/// server has answered 201 and the answer is applied; media starts as soon as ICE and DTLS are
/// up. `bearer` is sent as `Authorization: Bearer` on every request (RFC 9725 §4.5).
pub async fn publish(
    endpoint_url: &str,
    bearer: Option<&str>,
    source: MediaSource,
    opts: PublishOptions,
) -> Result<PublishSession, ClientError> {
    let endpoint = Url::parse(endpoint_url).map_err(|e| ClientError::Endpoint {
        url: endpoint_url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err(ClientError::Endpoint {
            url: endpoint_url.to_string(),
            reason: "scheme must be http or https".into(),
        });
    }
    let http = opts.http.clone().unwrap_or_default();
    let mut ice_servers = opts.ice_servers.clone();
    if opts.discover_ice_servers {
        ice_servers.extend(discover_ice_servers(&http, &endpoint, bearer, &opts).await?);
    }
    if opts.relay_only && ice_servers.is_empty() {
        return Err(ClientError::NoIceServer);
    }

    let (gathered_tx, mut gathered_rx) = watch::channel(0u32);
    let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
    let counters = Arc::new(Counters::default());
    let connects = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let simulcast = !source.layers().is_empty();
    let loss = opts.drop_video_packets.map(|every| Loss {
        every,
        resend_delay: opts.resend_delay,
        dropped: Arc::clone(&counters.video_packets_dropped),
        repaired_rid: simulcast,
    });
    let pc = build_peer_connection(
        PeerOptions {
            udp_addrs: &opts.udp_addrs,
            tcp_addrs: &opts.tcp_addrs,
            ice: Ice {
                servers: &ice_servers,
                relay_only: opts.relay_only,
            },
            stereo: source.audio_stereo(),
            simulcast,
            loss,
            move_on_ice_restart: opts.move_on_ice_restart,
        },
        Events {
            gathered: gathered_tx,
            state: state_tx,
            connects: Arc::clone(&connects),
        },
    )
    .await?;

    let result = negotiate(
        &pc,
        &http,
        &endpoint,
        bearer,
        &source,
        &opts,
        &mut gathered_rx,
    )
    .await;
    let negotiated = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = pc.close().await;
            return Err(e);
        }
    };

    let task = tokio::spawn(send_media(
        negotiated.video,
        negotiated.audio,
        source,
        Pacing {
            looping: opts.looping,
            latency_stamps: opts.latency_stamps,
        },
        Arc::clone(&counters),
        state_rx.clone(),
        opts.connect_timeout,
    ));

    Ok(PublishSession {
        pc,
        http,
        bearer: bearer.map(str::to_string),
        location: negotiated.location,
        offer_sdp: negotiated.offer_sdp,
        answer_sdp: negotiated.answer_sdp,
        etag: negotiated.etag,
        gathered: gathered_rx,
        gather_timeout: opts.gather_timeout,
        connects,
        counters,
        state: state_rx,
        task: Some(task),
        result: None,
        request_timeout: opts.request_timeout,
    })
}

/// `OPTIONS` on the endpoint: the ICE servers its `Link` headers advertise (RFC 9725 §4.6).
/// Any 2xx counts; the answer may advertise none.
async fn discover_ice_servers(
    http: &reqwest::Client,
    endpoint: &Url,
    bearer: Option<&str>,
    opts: &PublishOptions,
) -> Result<Vec<IceServer>, ClientError> {
    let mut request = http
        .request(reqwest::Method::OPTIONS, endpoint.clone())
        .timeout(opts.request_timeout);
    if let Some(token) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(ClientError::Status {
            status: status.as_u16(),
            body: body.chars().take(512).collect(),
        });
    }
    Ok(ice_servers_from_links(response.headers()))
}

/// The outcome of the offer/answer exchange.
struct Negotiated {
    location: Url,
    etag: Option<String>,
    offer_sdp: String,
    answer_sdp: String,
    video: Option<Outgoing>,
    audio: Option<Outgoing>,
}

async fn negotiate(
    pc: &Arc<dyn PeerConnection>,
    http: &reqwest::Client,
    endpoint: &Url,
    bearer: Option<&str>,
    source: &MediaSource,
    opts: &PublishOptions,
    gathered: &mut watch::Receiver<u32>,
) -> Result<Negotiated, ClientError> {
    let rids: Vec<&str> = source.layers().iter().map(|l| l.rid.as_str()).collect();
    let video = match source.video().is_empty() {
        true => None,
        false => Some(add_sendonly_track(pc, RtpCodecKind::Video, h264_codec(), &rids).await?),
    };
    let audio = match source.audio() {
        Some(_) => Some(
            add_sendonly_track(
                pc,
                RtpCodecKind::Audio,
                opus_codec(source.audio_stereo()),
                &[],
            )
            .await?,
        ),
        None => None,
    };

    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    // Non-trickle: the offer carries every candidate (RFC 9725 §4.3.1 allows either).
    tokio::time::timeout(opts.gather_timeout, gathered.wait_for(|done| *done > 0))
        .await
        .map_err(|_| ClientError::Timeout("ICE gathering"))?
        .map_err(|_| ClientError::ConnectionLost("peer connection dropped".into()))?;
    let offer = pc
        .local_description()
        .await
        .ok_or_else(|| ClientError::ConnectionLost("no local description".into()))?;

    let request = http
        .post(endpoint.clone())
        .header(CONTENT_TYPE, "application/sdp")
        .timeout(opts.request_timeout)
        .body(offer.sdp.clone());
    let WhipReply {
        location,
        etag,
        body,
    } = exchange(request, bearer, StatusCode::CREATED).await?;
    // Location may be relative to the endpoint (RFC 9725 §4.2, RFC 9110 §10.2.2).
    let location = location
        .and_then(|l| endpoint.join(&l).ok())
        .ok_or(ClientError::MissingLocation)?;

    // webrtc-rs connects to a passive TCP candidate only when it is added on its own: those
    // of the answer are taken out of it and added after it.
    let (answer_sdp, tcp_candidates) = match opts.tcp_addrs.is_empty() {
        true => (body.clone(), Vec::new()),
        false => split_tcp_candidates(&body),
    };
    let applied = match RTCSessionDescription::answer(answer_sdp) {
        Ok(answer) => pc.set_remote_description(answer).await,
        Err(e) => Err(e),
    };
    let applied = match applied {
        Ok(()) => add_candidates(pc, tcp_candidates).await,
        Err(e) => Err(e),
    };
    if let Err(e) = applied {
        // The server holds a session we cannot use: release it rather than wait for its
        // ICE timeout.
        let _ = delete_session(http, &location, bearer, opts.request_timeout).await;
        return Err(e.into());
    }
    let mut video = video;
    if let Some(out) = video.as_mut().filter(|_| !rids.is_empty()) {
        out.simulcast = Some(layers_to_send(out, source, &offer.sdp, &body, opts).await?);
    }
    Ok(Negotiated {
        location,
        etag,
        offer_sdp: offer.sdp,
        answer_sdp: body,
        video,
        audio,
    })
}

/// The simulcast layers to send: those the answer accepted (RFC 8853 §5.3; the first alone
/// when it declined simulcast), or all with [`PublishOptions::send_unaccepted_layers`].
async fn layers_to_send(
    out: &Outgoing,
    source: &MediaSource,
    offer_sdp: &str,
    answer_sdp: &str,
    opts: &PublishOptions,
) -> Result<SimulcastOut, ClientError> {
    let mid = video_mid(offer_sdp)
        .ok_or_else(|| ClientError::ConnectionLost("the offer has no video mid".into()))?;
    let accepted = accepted_layers(answer_sdp);
    let mut layers = Vec::new();
    for ssrc in out.track.ssrcs().await {
        let Some(rid) = out.track.rid(ssrc).await else {
            continue;
        };
        let Some(layer) = source.layers().iter().find(|l| l.rid == rid) else {
            continue;
        };
        let wanted = opts.send_unaccepted_layers
            || match &accepted {
                Some(rids) => rids.contains(&layer.rid),
                None => source.layers().first().is_some_and(|l| l.rid == rid),
            };
        if wanted {
            layers.push(LayerOut {
                ssrc,
                layer: layer.clone(),
            });
        }
    }
    Ok(SimulcastOut { mid, layers })
}

/// `sdp` without its TCP candidates, and those candidates (`candidate:...`, with their mid).
fn split_tcp_candidates(sdp: &str) -> (String, Vec<(String, Option<String>)>) {
    let mut kept = String::with_capacity(sdp.len());
    let mut tcp = Vec::new();
    let mut mid = None;
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_string());
        }
        if let Some(c) = line.strip_prefix("a=") {
            let transport = c.split_whitespace().nth(2);
            if c.starts_with("candidate:")
                && transport.is_some_and(|t| t.eq_ignore_ascii_case("tcp"))
            {
                tcp.push((c.to_string(), mid.clone()));
                continue;
            }
        }
        kept.push_str(line);
        kept.push_str("\r\n");
    }
    (kept, tcp)
}

async fn add_candidates(
    pc: &Arc<dyn PeerConnection>,
    candidates: Vec<(String, Option<String>)>,
) -> Result<(), webrtc::error::Error> {
    for (candidate, sdp_mid) in candidates {
        pc.add_ice_candidate(webrtc::peer_connection::RTCIceCandidateInit {
            candidate,
            sdp_mid,
            ..Default::default()
        })
        .await?;
    }
    Ok(())
}

/// What a WHIP request got back.
struct WhipReply {
    location: Option<String>,
    etag: Option<String>,
    body: String,
}

/// Sends `request` (with the bearer token, if any) and reads its reply; any status other than
/// `want` is an error carrying the start of the body.
async fn exchange(
    mut request: reqwest::RequestBuilder,
    bearer: Option<&str>,
    want: StatusCode,
) -> Result<WhipReply, ClientError> {
    if let Some(token) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request.send().await?;
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let (location, etag) = (header(LOCATION), header(ETAG));
    let body = response.text().await?;
    if status != want {
        return Err(ClientError::Status {
            status: status.as_u16(),
            body: body.chars().take(512).collect(),
        });
    }
    Ok(WhipReply {
        location,
        etag,
        body,
    })
}

/// DELETE on the session resource (RFC 9725 §4.2); any 2xx is success.
async fn delete_session(
    http: &reqwest::Client,
    location: &Url,
    bearer: Option<&str>,
    request_timeout: Duration,
) -> Result<(), ClientError> {
    let mut request = http.delete(location.clone()).timeout(request_timeout);
    if let Some(token) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request.send().await?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(ClientError::Status {
        status: status.as_u16(),
        body: body.chars().take(512).collect(),
    })
}

impl PublishSession {
    /// The session resource URL from the 201's `Location`, made absolute.
    pub fn location(&self) -> &str {
        self.location.as_str()
    }

    /// The SDP offer that was sent (with all its candidates).
    pub fn offer_sdp(&self) -> &str {
        &self.offer_sdp
    }

    /// The SDP answer the server returned.
    pub fn answer_sdp(&self) -> &str {
        &self.answer_sdp
    }

    /// The session resource's current entity-tag, if the server gave one.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Restarts ICE while media keeps flowing (RFC 9725 §4.3.2): a new offer with fresh
    /// credentials (and candidates, on new ports with [`PublishOptions::move_on_ice_restart`])
    /// goes to the server as a PATCH fragment; the server's 200 fragment, with its new
    /// credentials and candidates, becomes the new answer. Returns the server's fragment.
    pub async fn restart_ice(&mut self) -> Result<String, ClientError> {
        let before = *self.gathered.borrow();
        self.pc.restart_ice().await?;
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        tokio::time::timeout(
            self.gather_timeout,
            self.gathered.wait_for(|done| *done > before),
        )
        .await
        .map_err(|_| ClientError::Timeout("ICE gathering after a restart"))?
        .map_err(|_| ClientError::ConnectionLost("peer connection dropped".into()))?;
        let offer = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| ClientError::ConnectionLost("no local description".into()))?;
        let request = self
            .http
            .patch(self.location.clone())
            .header(CONTENT_TYPE, "application/trickle-ice-sdpfrag")
            .header(IF_MATCH, self.etag.as_deref().unwrap_or("*"))
            .timeout(self.request_timeout)
            .body(fragment_of(&offer.sdp));
        let WhipReply { etag, body, .. } =
            exchange(request, self.bearer.as_deref(), StatusCode::OK).await?;
        let frag = SdpFrag::parse(&body).map_err(|e| ClientError::Restart(e.to_string()))?;
        let answer = restarted(&self.answer_sdp, &frag).ok_or_else(|| {
            ClientError::Restart("the server's fragment has no ICE credentials".into())
        })?;
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer.clone())?)
            .await?;
        self.offer_sdp = offer.sdp;
        self.answer_sdp = answer;
        self.etag = etag.or(self.etag.take());
        Ok(body)
    }

    /// The candidate pair ICE selected, from the connection's stats (W3C webrtc-stats:
    /// the transport's `selectedCandidatePairId`); `None` before one is selected.
    pub async fn selected_candidate_pair(&self) -> Option<SelectedPair> {
        let report = self
            .pc
            .get_stats(std::time::Instant::now(), StatsSelector::None)
            .await;
        let pair_id = report.iter().find_map(|entry| match entry {
            RTCStatsReportEntry::Transport(t) if !t.selected_candidate_pair_id.is_empty() => {
                Some(t.selected_candidate_pair_id.clone())
            }
            _ => None,
        })?;
        let Some(RTCStatsReportEntry::IceCandidatePair(pair)) = report.get(&pair_id) else {
            return None;
        };
        // The pair names its candidates by their own ids; the report keys them with a prefix.
        let candidate = |id: &str| {
            report.iter().find_map(|entry| match entry {
                RTCStatsReportEntry::LocalCandidate(c)
                | RTCStatsReportEntry::RemoteCandidate(c)
                    if entry.id() == id || entry.id().ends_with(&format!("_{id}")) =>
                {
                    Some(Candidate {
                        kind: c.candidate_type.to_string(),
                        address: c.address.clone().unwrap_or_default(),
                        port: c.port,
                    })
                }
                _ => None,
            })
        };
        Some(SelectedPair {
            local: candidate(&pair.local_candidate_id)?,
            remote: candidate(&pair.remote_candidate_id),
        })
    }

    /// Counts of what has been sent so far.
    pub fn stats(&self) -> SendStats {
        self.counters.snapshot()
    }

    /// How many times ICE and DTLS have come up: 1 after connecting, one more after each ICE
    /// restart whose new checks succeeded.
    pub fn times_connected(&self) -> u32 {
        self.connects.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// Waits until ICE and DTLS are up (media then starts at once).
    pub async fn wait_connected(&mut self, limit: Duration) -> Result<(), ClientError> {
        let state = tokio::time::timeout(
            limit,
            self.state
                .wait_for(|s| *s == RTCPeerConnectionState::Connected || failed(*s)),
        )
        .await
        .map_err(|_| ClientError::Timeout("ICE/DTLS connection"))?
        .map_err(|_| ClientError::ConnectionLost("peer connection dropped".into()))
        .map(|s| *s)?;
        if state == RTCPeerConnectionState::Connected {
            Ok(())
        } else {
            Err(ClientError::ConnectionLost(format!("connection {state}")))
        }
    }

    /// Waits for the sender to reach the end of the source (never, when looping: wrap this in a
    /// timeout) and returns what it sent, or why it stopped early. Later calls repeat the
    /// outcome (an error then only as text).
    pub async fn finished(&mut self) -> Result<SendStats, ClientError> {
        if let Some(task) = self.task.take() {
            let outcome = task
                .await
                .unwrap_or_else(|e| Err(ClientError::Task(e.to_string())));
            self.result = Some(outcome.as_ref().map(|s| *s).map_err(|e| e.to_string()));
            return outcome;
        }
        match &self.result {
            Some(Ok(stats)) => Ok(*stats),
            Some(Err(e)) => Err(ClientError::Task(e.clone())),
            None => Err(ClientError::Task("sender never started".into())),
        }
    }

    /// Ends the session: stops sending, DELETEs the session resource (RFC 9725 §4.2) and
    /// closes the peer connection (even if the DELETE fails). Returns what was sent.
    pub async fn stop(mut self) -> Result<SendStats, ClientError> {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        let stats = self.counters.snapshot();
        let deleted = delete_session(
            &self.http,
            &self.location,
            self.bearer.as_deref(),
            self.request_timeout,
        )
        .await;
        let closed = self.pc.close().await;
        deleted?;
        closed?;
        Ok(stats)
    }
}

impl Drop for PublishSession {
    /// A session dropped without `stop` still stops sending and closes its peer connection
    /// (the server notices via ICE consent expiry; no DELETE is sent).
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}
