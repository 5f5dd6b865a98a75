// castgate publisher page: camera + microphone -> WHIP (RFC 9725) to this gateway.
// Plain JavaScript, no libraries. The page's state is also kept in window.castgate, so tests
// (and curious people in the console) can read it.
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const page = (window.castgate = {
  state: 'idle',
  error: '',
  resource: null,
  // Trickle ICE PATCHes sent and what the gateway answered (for the browser tests).
  trickle: { sent: 0, accepted: 0, statuses: [] },
  // ICE restarts (RFC 9725 §4.3.2): the gateway's answer to each, or the error.
  restarts: [],
  // New publishes after the gateway gave a lost session up (joined within its reconnect grace).
  republishes: 0,
  // Restarts ICE now (the page does it by itself when the connection fails); resolves to the
  // gateway's status, or an error text.
  restartIce: () => restartIce(),
});

let media = null; // the MediaStream being previewed (and sent when live)
let pc = null; // the RTCPeerConnection while live
let resource = null; // the WHIP session URL to DELETE
let statsTimer = null;
let trickle = null; // the trickler of the live connection
let etag = null; // the WHIP session's entity-tag, for If-Match
let restarting = null; // the ICE restart in progress (a promise)
let recovering = false; // recover() is running
let attempts = 0; // ICE restarts since the connection was last up
let disconnectTimer = null;
let lastBytes = null; // { bytes, at } for the sent bitrate

function setState(state, label, pillClass) {
  page.state = state;
  document.body.dataset.state = state;
  const pill = $('state');
  pill.textContent = label;
  pill.className = `pill ${pillClass || ''}`;
  const busy = state === 'connecting' || state === 'live';
  $('go').hidden = busy;
  $('stop').hidden = !busy;
  for (const id of ['stream', 'token', 'camera', 'microphone', 'resolution', 'bitrate']) {
    $(id).disabled = busy;
  }
}

function showError(message) {
  page.error = message;
  $('error').textContent = message;
}

// ---- Camera and microphone ------------------------------------------------------------------

function constraints() {
  const [width, height] = $('resolution').value.split('x').map(Number);
  const camera = $('camera').value;
  const microphone = $('microphone').value;
  return {
    video: {
      width: { ideal: width },
      height: { ideal: height },
      frameRate: { ideal: 30 },
      ...(camera ? { deviceId: { exact: camera } } : {}),
    },
    audio: microphone ? { deviceId: { exact: microphone } } : true,
  };
}

function mediaErrorText(e) {
  switch (e && e.name) {
    case 'NotAllowedError':
      return 'Camera or microphone access was refused. Allow it in the browser (the icon in the address bar), then try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No matching camera or microphone was found. Plug one in, or pick another in the lists.';
    case 'NotReadableError':
      return 'The camera or microphone is busy: another app may be using it.';
    default:
      return `The camera could not start (${e && e.message}).`;
  }
}

async function startPreview() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error('This page cannot use the camera: browsers allow it only on HTTPS pages (or on localhost). Open castgate over HTTPS.');
  }
  if (media) media.getTracks().forEach((t) => t.stop());
  try {
    media = await navigator.mediaDevices.getUserMedia(constraints());
  } catch (e) {
    media = null;
    throw new Error(mediaErrorText(e));
  }
  $('preview').srcObject = media;
  $('preview-overlay').hidden = true;
  await listDevices();
}

// Device labels are only readable after permission was given, so this runs after getUserMedia.
async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current) => {
    const options = devices.filter((d) => d.kind === kind).map((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
      return o;
    });
    select.replaceChildren(...options);
    if (current) select.value = current;
  };
  const track = (kind) => media && media.getTracks().find((t) => t.kind === kind);
  const using = (kind) => (track(kind) ? track(kind).getSettings().deviceId : '');
  fill($('camera'), 'videoinput', using('video'));
  fill($('microphone'), 'audioinput', using('audio'));
}

// ---- H.264 preference -----------------------------------------------------------------------

// castgate re-muxes video without re-encoding, and HLS/FLV players want H.264: offer H.264
// only (packetization-mode=1 and Constrained Baseline first), plus RTX/RED/FEC.
function preferH264(transceiver) {
  if (!transceiver.setCodecPreferences) return; // the gateway will pick H.264 if offered
  for (const source of [RTCRtpSender, RTCRtpReceiver]) {
    const capabilities = source.getCapabilities && source.getCapabilities('video');
    if (!capabilities) continue;
    const rank = (c) => (/packetization-mode=1/.test(c.sdpFmtpLine || '') ? 0 : 2) +
      (/profile-level-id=42e0/i.test(c.sdpFmtpLine || '') ? 0 : 1);
    const h264 = capabilities.codecs
      .filter((c) => c.mimeType.toLowerCase() === 'video/h264')
      .sort((a, b) => rank(a) - rank(b));
    if (h264.length === 0) {
      throw new Error('This browser cannot send H.264 video, which castgate needs. Try a recent Chrome, Edge, Safari or Firefox.');
    }
    const helpers = capabilities.codecs.filter((c) => /^video\/(rtx|red|ulpfec|flexfec-03)$/i.test(c.mimeType));
    try {
      transceiver.setCodecPreferences(h264.concat(helpers));
      return;
    } catch (e) {
      // Some versions check against the receiver's capabilities, others the sender's.
    }
  }
}

// ---- Trickle ICE (RFC 9725 §4.3, RFC 8840) ----------------------------------------------------

// The offer goes out at once; candidates found later follow it by PATCH, in order, one request
// at a time. Those found before the gateway's answer wait for its Location and ETag.
function trickler(pc) {
  const queue = [];
  let target = null;
  let busy = false;
  const flush = async () => {
    if (busy || !target || queue.length === 0) return;
    busy = true;
    const batch = queue.splice(0, queue.length);
    const headers = { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': target.etag };
    if ($('token').value) headers.Authorization = `Bearer ${$('token').value}`;
    page.trickle.sent += 1;
    try {
      const body = sdpFragment(pc.localDescription.sdp, batch);
      const response = await fetch(target.url, { method: 'PATCH', headers, body });
      page.trickle.statuses.push(response.status);
      if (response.status === 204) page.trickle.accepted += 1;
    } catch (e) {
      // The gateway still finds this browser's addresses from its ICE checks.
      page.trickle.statuses.push(String(e));
    }
    busy = false;
    flush();
  };
  pc.addEventListener('icecandidate', (e) => {
    // null (or an empty candidate): gathering is over.
    queue.push(e.candidate && e.candidate.candidate ? e.candidate : null);
    flush();
  });
  return {
    start(url, etag) {
      if (!etag) return; // a gateway without an ETag takes no PATCH
      target = { url, etag };
      flush();
    },
    // During an ICE restart: the new generation's candidates wait for the new ETag (sent
    // before the restart, they would look like one to the gateway).
    pause() {
      target = null;
    },
    // Resolves once the PATCHes in flight are done.
    async idle() {
      while (busy) await new Promise((resolve) => setTimeout(resolve, 20));
    },
  };
}

// An sdpfrag for `candidates` (null marks the end of gathering): the session's ICE credentials,
// then each media section that has news, with its m= line and mid.
function sdpFragment(sdp, candidates) {
  const field = (name) => (new RegExp(`^a=${name}:(.*)$`, 'm').exec(sdp) || [])[1] || '';
  const sections = sdp.split(/\r?\nm=/).slice(1).map((text) => {
    const lines = text.split(/\r?\n/);
    return { mline: `m=${lines[0]}`, mid: ((/^a=mid:(.*)$/m.exec(text) || [])[1] || '').trim() };
  });
  let frag = `a=ice-ufrag:${field('ice-ufrag').trim()}\r\na=ice-pwd:${field('ice-pwd').trim()}\r\n`;
  const ended = candidates.includes(null);
  for (const section of sections) {
    const mine = candidates.filter((c) => c && (c.sdpMid === section.mid || c.sdpMid == null));
    // With BUNDLE the candidates are the first section's; the end is said there too.
    if (mine.length === 0 && !(ended && section === sections[0])) continue;
    frag += `${section.mline}\r\na=mid:${section.mid}\r\n`;
    for (const c of mine) frag += `a=${c.candidate}\r\n`;
    if (ended && section === sections[0]) frag += 'a=end-of-candidates\r\n';
  }
  return frag;
}

// ---- ICE restart (RFC 9725 §4.3.2) -----------------------------------------------------------

// A new offer with fresh ICE credentials goes to the gateway as a PATCH; its 200 carries the
// gateway's new credentials and candidates, which replace the old ones in the answer. Media
// goes on over DTLS and SRTP as before; the new candidates follow by trickle.
function restartIce() {
  if (!restarting) {
    restarting = doRestartIce().finally(() => {
      restarting = null;
    });
  }
  return restarting;
}

async function doRestartIce() {
  if (!pc || !resource || !etag) return 'not live';
  const target = resource;
  trickle.pause();
  await trickle.idle();
  let outcome;
  try {
    await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
    const headers = { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': etag };
    if ($('token').value) headers.Authorization = `Bearer ${$('token').value}`;
    const body = sdpFragment(pc.localDescription.sdp, []);
    const response = await fetch(target, { method: 'PATCH', headers, body });
    const text = await response.text();
    outcome = response.status;
    if (response.status === 200 && pc) {
      etag = response.headers.get('ETag') || etag;
      const answer = restartedAnswer(pc.remoteDescription.sdp, text);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    } else if (pc) {
      await pc.setLocalDescription({ type: 'rollback' });
    }
  } catch (e) {
    outcome = String(e);
  }
  page.restarts.push(outcome);
  if (pc && resource === target) trickle.start(target, etag);
  return outcome;
}

// `sdp` (the gateway's last answer) with the credentials and candidates of `frag` (its 200).
function restartedAnswer(sdp, frag) {
  const lines = frag.split(/\r?\n/);
  const value = (prefix) => (lines.find((l) => l.startsWith(prefix)) || '').slice(prefix.length);
  const candidates = lines.filter((l) => l.startsWith('a=candidate:'));
  const ufrag = value('a=ice-ufrag:');
  const pwd = value('a=ice-pwd:');
  const out = [];
  let firstSection = true;
  for (const line of sdp.split(/\r?\n/)) {
    if (line === '' || line.startsWith('a=candidate:') || line === 'a=end-of-candidates') continue;
    if (line.startsWith('a=ice-ufrag:')) out.push(`a=ice-ufrag:${ufrag}`);
    else if (line.startsWith('a=ice-pwd:')) out.push(`a=ice-pwd:${pwd}`);
    else out.push(line);
    // With BUNDLE the first section carries the candidates.
    if (firstSection && line.startsWith('a=mid:')) {
      out.push(...candidates, 'a=end-of-candidates');
      firstSection = false;
    }
  }
  return `${out.join('\r\n')}\r\n`;
}

// ---- WHIP -----------------------------------------------------------------------------------

function gatewayErrorText(status, body, name) {
  const detail = body.trim().slice(0, 200);
  switch (status) {
    case 409:
      return `The name "${name}" is already live. Pick another name, or stop the other broadcast first.`;
    case 401:
    case 403:
      return $('token').value
        ? 'The gateway refused this token. Check it and try again.'
        : 'This gateway needs a token to go live. Enter it in the Token field.';
    case 406:
    case 415:
      return `The gateway cannot take this browser's video or audio (it needs H.264 video). ${detail}`;
    case 400:
      return `The gateway did not accept the request: ${detail}`;
    case 503:
      return 'The gateway is busy (no free media port). Try again in a moment.';
    default:
      return `The gateway answered ${status}. ${detail}`;
  }
}

async function goLive() {
  showError('');
  const name = $('stream').value.trim();
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
    showError('Choose a stream name: 1 to 64 letters, digits, "-" or "_".');
    return;
  }
  setState('connecting', 'Connecting…', 'warn');
  try {
    if (!media) await startPreview();
    pc = page.pc = new RTCPeerConnection({ iceServers: [] });
    let video = null;
    for (const track of media.getTracks()) {
      const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
      if (track.kind === 'video') video = t;
    }
    if (video) preferH264(video);
    pc.addEventListener('connectionstatechange', onConnectionState);
    trickle = trickler(pc);
    page.trickle = { sent: 0, accepted: 0, statuses: [] };
    page.restarts = [];

    await pc.setLocalDescription(await pc.createOffer());

    const endpoint = new URL(`/whip/${encodeURIComponent(name)}`, location.href).href;
    const headers = { 'Content-Type': 'application/sdp' };
    if ($('token').value) headers.Authorization = `Bearer ${$('token').value}`;
    let response;
    try {
      response = await fetch(endpoint, { method: 'POST', headers, body: pc.localDescription.sdp });
    } catch (e) {
      throw new Error('Cannot reach the gateway. Check the network and try again.');
    }
    const body = await response.text();
    if (response.status !== 201) throw new Error(gatewayErrorText(response.status, body, name));
    resource = page.resource = new URL(response.headers.get('Location') || endpoint, endpoint).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    etag = response.headers.get('ETag');
    trickle.start(resource, etag);
    await applyBitrate(video);
    statsTimer = setInterval(updateStats, 1000);
  } catch (e) {
    await stop();
    showError(e.message);
    setState('error', 'Not live', 'warn');
  }
}

async function applyBitrate(video) {
  if (!video) return;
  try {
    const parameters = video.sender.getParameters();
    if (!parameters.encodings || parameters.encodings.length === 0) parameters.encodings = [{}];
    parameters.encodings[0].maxBitrate = Number($('bitrate').value);
    await video.sender.setParameters(parameters);
  } catch (e) {
    // Not fatal: the browser picks its own bitrate.
  }
}

function onConnectionState() {
  if (!pc) return;
  $('stat-connection').textContent = pc.connectionState;
  clearTimeout(disconnectTimer);
  if (pc.connectionState === 'connected') {
    attempts = 0;
    setState('live', 'Live', 'live');
  } else if (pc.connectionState === 'disconnected') {
    // Often a blip that heals by itself; if it lasts, the network changed: restart ICE.
    setState('connecting', 'Reconnecting…', 'warn');
    const stuck = pc;
    disconnectTimer = setTimeout(() => {
      if (pc === stuck && pc.connectionState === 'disconnected') recover();
    }, 2000);
  } else if (pc.connectionState === 'failed') {
    recover();
  }
}

// Gets the broadcast going again after a network change: an ICE restart on the same WHIP
// session first; if the gateway has given the session up (or restarts keep failing), a new
// publish under the same name, which the gateway joins to the same stream within its
// reconnect grace (viewers keep playing). After three tries of each, the page gives up.
async function recover() {
  if (recovering || !pc) return;
  recovering = true;
  try {
    setState('connecting', 'Reconnecting…', 'warn');
    attempts += 1;
    const outcome = attempts <= 3 ? await restartIce() : 'too many restarts';
    if (outcome !== 200 && page.republishes < 3) {
      page.republishes += 1;
      dropConnection();
      await goLive();
    } else if (outcome !== 200) {
      await stop();
      showError('The connection to the gateway was lost (no media path: a firewall may block UDP).');
      setState('error', 'Not live', 'warn');
    }
  } finally {
    recovering = false;
  }
}

// Forgets the live connection without ending the publish (no DELETE).
function dropConnection() {
  clearInterval(statsTimer);
  statsTimer = null;
  lastBytes = null;
  resource = page.resource = null;
  if (pc) {
    pc.close();
    pc = page.pc = null;
  }
  trickle = null;
  etag = null;
}

async function updateStats() {
  if (!pc) return;
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
    const now = s.timestamp;
    if (lastBytes && now > lastBytes.at) {
      const bps = ((s.bytesSent - lastBytes.bytes) * 8 * 1000) / (now - lastBytes.at);
      $('stat-bitrate').textContent = `${(bps / 1e6).toFixed(2)} Mbit/s`;
    }
    lastBytes = { bytes: s.bytesSent, at: now };
    $('stat-fps').textContent = s.framesPerSecond ? `${Math.round(s.framesPerSecond)} fps` : '–';
    $('stat-resolution').textContent = s.frameWidth ? `${s.frameWidth}×${s.frameHeight}` : '–';
    const codec = stats.get(s.codecId);
    $('stat-codec').textContent = codec ? codec.mimeType.replace('video/', '') : '–';
  });
}

async function stop() {
  clearTimeout(disconnectTimer);
  const closing = resource;
  dropConnection();
  attempts = 0;
  if (closing) {
    try {
      await fetch(closing, { method: 'DELETE' });
    } catch (e) {
      // The gateway ends the stream by itself once media stops (idle timeout).
    }
  }
  for (const id of ['stat-connection', 'stat-bitrate', 'stat-fps', 'stat-resolution', 'stat-codec']) {
    $(id).textContent = '–';
  }
  setState('idle', 'Offline', '');
}

// ---- Share links ----------------------------------------------------------------------------

function updateLinks() {
  const name = encodeURIComponent($('stream').value.trim() || 'NAME');
  $('url-watch').value = new URL(`/watch.html?stream=${name}`, location.href).href;
  $('url-hls').value = new URL(`/hls/${name}/master.m3u8`, location.href).href;
  $('url-flv').value = new URL(`/flv/${name}.flv`, location.href).href;
}

async function copy(button) {
  const input = $(button.dataset.copy);
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (e) {
    input.select(); // no clipboard API (plain HTTP): let the user copy by hand
    document.execCommand && document.execCommand('copy');
  }
  button.textContent = 'Copied';
  setTimeout(() => (button.textContent = 'Copy'), 1500);
}

// ---- Wiring ---------------------------------------------------------------------------------

$('stream').value = params.get('stream') || localStorage.getItem('castgate-stream') || '';
// Kiosk and test use: ?resolution=640x360&bitrate=1500000 preselect the lists.
for (const id of ['resolution', 'bitrate']) {
  const wanted = params.get(id);
  if (wanted && [...$(id).options].some((o) => o.value === wanted)) $(id).value = wanted;
}
$('stream').addEventListener('input', () => {
  localStorage.setItem('castgate-stream', $('stream').value.trim());
  updateLinks();
});
$('go').addEventListener('click', goLive);
$('stop').addEventListener('click', () => stop());
$('settings').addEventListener('submit', (e) => {
  e.preventDefault();
  goLive();
});
for (const id of ['camera', 'microphone', 'resolution']) {
  $(id).addEventListener('change', () => startPreview().catch((e) => showError(e.message)));
}
for (const button of document.querySelectorAll('[data-copy]')) {
  button.addEventListener('click', () => copy(button));
}
// End the WHIP session when the page goes away; keepalive lets the request outlive the page.
window.addEventListener('pagehide', () => {
  if (resource) fetch(resource, { method: 'DELETE', keepalive: true });
});

updateLinks();
setState('idle', 'Offline', '');
startPreview()
  .then(() => {
    if (params.get('autostart') === '1') goLive();
  })
  .catch((e) => {
    showError(e.message);
    if (params.get('autostart') === '1') goLive();
  });
