// castgate stream list: polls GET /api/streams and draws one card per live stream.
'use strict';

const REFRESH_MS = 3000;
const list = document.getElementById('streams');
const status = document.getElementById('status');

// "1 h 02 min", "4 min 10 s", "12 s"
function formatUptime(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function streamCard(s) {
  const card = element('article', 'card stream');
  card.dataset.stream = s.name;
  const title = element('div', 'title');
  title.append(element('span', s.state === 'live' ? 'pill live' : 'pill', s.state === 'live' ? 'Live' : s.state === 'reconnecting' ? 'Reconnecting' : 'Starting'),
    element('span', '', s.name));
  const meta = element('div', 'meta');
  const facts = [];
  if (s.width && s.height) facts.push(`${s.width}×${s.height}` + (s.frame_rate ? ` · ${Math.round(s.frame_rate)} fps` : ''));
  if (s.video_bitrate) facts.push(`${(s.video_bitrate / 1e6).toFixed(1)} Mbit/s`);
  if (s.video_codec) facts.push(`video ${s.video_codec}`);
  if (s.output_audio_codec) facts.push(`audio ${s.output_audio_codec}`);
  const viewers = s.viewers ? s.viewers.hls + s.viewers.flv : 0;
  facts.push(`${viewers} ${viewers === 1 ? 'viewer' : 'viewers'}`);
  facts.push(`up ${formatUptime(Date.now() - s.started_at_ms)}`);
  for (const f of facts) meta.append(element('span', '', f));
  const actions = element('div', 'actions');
  const watch = element('a', 'button primary', 'Watch');
  watch.href = `/watch.html?stream=${encodeURIComponent(s.name)}`;
  const lowLatency = element('a', 'button', 'Low latency (FLV)');
  lowLatency.href = `/watch.html?stream=${encodeURIComponent(s.name)}&format=flv`;
  actions.append(watch, lowLatency);
  card.append(title, meta, actions);
  return card;
}

async function refresh() {
  try {
    const response = await fetch('/api/streams', { cache: 'no-store' });
    if (!response.ok) throw new Error(`the gateway answered ${response.status}`);
    const { streams } = await response.json();
    list.replaceChildren(...streams.map(streamCard));
    if (streams.length === 0) {
      const empty = element('div', 'card empty');
      empty.append(element('p', '', 'Nobody is live right now.'),
        element('p', 'muted small', 'Start a broadcast from your camera, or publish with OBS or any WHIP client to /whip/NAME.'));
      const go = element('a', 'button primary', 'Go live');
      go.href = '/publish.html';
      empty.append(go);
      list.append(empty);
    }
    status.textContent = `${streams.length} live · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.textContent = `Cannot reach the gateway (${e.message}); retrying…`;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
