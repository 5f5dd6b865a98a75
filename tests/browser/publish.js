// castgate browser test: publish the (fake) camera and microphone to a castgate gateway over
// WHIP (RFC 9725), from a page on another origin so the gateway's CORS answers are exercised.
// Plain JavaScript, no libraries. Progress goes to document.title ("live", "done",
// "error: ...") and, for the Rust test that cannot see the page, to POST /report here.
'use strict';

const params = new URLSearchParams(location.search);
const gateway = params.get('gateway') || '';
const stream = params.get('stream') || 'browser';
const seconds = Number(params.get('seconds') || '0');
// Camera size; `simulcast=1` sends it as three layers (rids q, h, f at 1/4, 1/2 and full size),
// as web apps do with sendEncodings; `degradation` is the sender's degradationPreference
// (default maintain-resolution; `balanced` leaves Chromium's own, which ramps the resolution).
const width = Number(params.get('width') || '640');
const height = Number(params.get('height') || '360');
const simulcast = params.get('simulcast') === '1';
const degradation = params.get('degradation') || 'maintain-resolution';
// `source=clock`: instead of the camera, a 640x360 canvas showing the wall clock as a barcode
// (clock.js), with the fake microphone; `bitrate` caps the video encoder (bits per second).
const source = params.get('source') || 'camera';
const bitrate = Number(params.get('bitrate') || '0');

function report(state, detail) {
  document.title = state;
  document.getElementById('status').textContent = detail ? `${state}: ${detail}` : state;
  // Best effort: the page must keep publishing even if nobody listens.
  fetch('/report', {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ state, detail: detail || '', ms: Math.round(performance.now()) }),
  }).catch(() => {});
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// H.264 first (packetization-mode=1 before mode 0, Constrained Baseline before other profiles),
// then only the codecs that are not media formats (RTX, RED, FEC), so the offer holds no
// VP8/VP9/AV1 the gateway could pick instead: the test is about H.264.
function h264Preferences(capabilities) {
  const isH264 = (c) => c.mimeType.toLowerCase() === 'video/h264';
  const rank = (c) => {
    const fmtp = c.sdpFmtpLine || '';
    let r = 0;
    if (!/packetization-mode=1/.test(fmtp)) r += 2;
    if (!/profile-level-id=42e0/i.test(fmtp)) r += 1;
    return r;
  };
  const h264 = capabilities.codecs.filter(isH264).sort((a, b) => rank(a) - rank(b));
  if (h264.length === 0) {
    throw new Error('this browser offers no H.264 encoder');
  }
  const helpers = capabilities.codecs.filter((c) =>
    /^video\/(rtx|red|ulpfec|flexfec-03)$/i.test(c.mimeType));
  return h264.concat(helpers);
}

function preferH264(transceiver) {
  // Chromium validates preferences against the receiver capabilities (older versions) or the
  // sender ones (newer): try both.
  const sources = [RTCRtpReceiver, RTCRtpSender];
  let lastError = null;
  for (const source of sources) {
    const capabilities = source.getCapabilities && source.getCapabilities('video');
    if (!capabilities) continue;
    try {
      transceiver.setCodecPreferences(h264Preferences(capabilities));
      return;
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError || new Error('setCodecPreferences is unavailable');
}

function iceGatheringComplete(pc, limitMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ICE gathering not complete after ${limitMs} ms`)), limitMs);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

// What the encoder actually does: sent to the test for diagnosis (resolution, frame rate,
// encoder, whether CPU or bandwidth limits kicked in).
async function reportStats(pc) {
  const stats = await pc.getStats();
  const parts = [];
  stats.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      const codec = stats.get(s.codecId);
      parts.push(`video${s.rid ? ' rid=' + s.rid : ''} ` +
        `${codec ? codec.mimeType + ' pt=' + codec.payloadType : '?'} bytes=${s.bytesSent} ` +
        `${s.frameWidth}x${s.frameHeight} fps=${s.framesPerSecond} encoded=${s.framesEncoded} ` +
        `keyframes=${s.keyFramesEncoded} pli=${s.pliCount} nack=${s.nackCount} ` +
        `encoder=${s.encoderImplementation} limit=${s.qualityLimitationReason}`);
    } else if (s.type === 'outbound-rtp' && s.kind === 'audio') {
      const codec = stats.get(s.codecId);
      parts.push(`audio ${codec ? codec.mimeType : '?'} packets=${s.packetsSent}`);
    } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
      const local = stats.get(s.localCandidateId);
      const remote = stats.get(s.remoteCandidateId);
      parts.push(`pair ${local && local.protocol} ${local && local.address}:${local && local.port} -> ` +
        `${remote && remote.address}:${remote && remote.port}`);
    }
  });
  report('stats', parts.join(' | '));
}

async function capture() {
  if (source === 'clock') {
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    return new MediaStream([window.castgateClock.start(), ...mic.getAudioTracks()]);
  }
  return navigator.mediaDevices.getUserMedia({
    video: { width, height, frameRate: 30 },
    audio: true,
  });
}

async function publish() {
  if (!gateway) throw new Error('no ?gateway= in the page URL');
  const media = await capture();
  const settings = media.getVideoTracks()[0].getSettings();
  report('camera', `${settings.width}x${settings.height}@${settings.frameRate}`);

  const pc = new RTCPeerConnection({ iceServers: [] });
  let videoTransceiver = null;
  for (const track of media.getTracks()) {
    const init = { direction: 'sendonly', streams: [media] };
    if (track.kind === 'video' && simulcast) {
      init.sendEncodings = [
        { rid: 'q', scaleResolutionDownBy: 4 },
        { rid: 'h', scaleResolutionDownBy: 2 },
        { rid: 'f' },
      ];
    } else if (track.kind === 'video' && bitrate > 0) {
      init.sendEncodings = [{ maxBitrate: bitrate }];
    }
    const transceiver = pc.addTransceiver(track, init);
    if (track.kind === 'video') videoTransceiver = transceiver;
  }
  preferH264(videoTransceiver);
  pc.addEventListener('connectionstatechange', () => report('pc', pc.connectionState));

  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc, 10000);

  const endpoint = `${gateway}/whip/${encodeURIComponent(stream)}`;
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  const answer = await response.text();
  if (response.status !== 201) {
    throw new Error(`POST ${endpoint} answered ${response.status}: ${answer.slice(0, 200)}`);
  }
  const locationHeader = response.headers.get('Location');
  if (!locationHeader) {
    throw new Error('201 without a readable Location (is it in Access-Control-Expose-Headers?)');
  }
  const resource = new URL(locationHeader, endpoint).href;
  report('offer-sdp', pc.localDescription.sdp);
  report('answer-sdp', answer);
  const candidates = answer.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'));
  report('answer', `${candidates.length} candidates: ${candidates.join(' ; ')}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  // What the sender kept of its encodings after the answer (RFC 8853: the layers it accepted).
  const encodings = videoTransceiver.sender.getParameters().encodings || [];
  report('encodings', encodings.map((e) => `${e.rid || '-'}:${e.active ? 'active' : 'inactive'}`).join(' '));

  // By default keep the camera size under CPU or bandwidth pressure (drop frames instead), so
  // the output size the test checks does not depend on the machine's load. Not contentHint =
  // 'detail': that switches OpenH264 to its screen-content mode, unlike a real camera.
  if (degradation !== 'balanced') {
    try {
      const sender = videoTransceiver.sender;
      const parameters = sender.getParameters();
      parameters.degradationPreference = degradation;
      await sender.setParameters(parameters);
    } catch (e) {
      report('warning', `degradationPreference not set: ${e.message}`);
    }
  }

  const deadline = Date.now() + 15000;
  while (pc.connectionState !== 'connected') {
    if (pc.connectionState === 'failed' || Date.now() > deadline) {
      throw new Error(`peer connection ${pc.connectionState}, ICE ${pc.iceConnectionState}`);
    }
    await sleep(100);
  }
  report('live', resource);

  if (seconds > 0) {
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      await sleep(Math.min(2000, end - Date.now()));
      await reportStats(pc);
    }
    const del = await fetch(resource, { method: 'DELETE' });
    pc.close();
    media.getTracks().forEach((t) => t.stop());
    report('done', String(del.status));
  }
}

publish().catch((e) => report('error', `${e && e.name}: ${e && e.message}`));
