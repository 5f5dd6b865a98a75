// castgate viewer page. Polls /api/streams to know whether the stream is live, starts the
// player when it is, tears it down when the broadcast ends, and starts again when a new
// broadcast begins (a new publish has a new started_at_ms). Plain JavaScript; the players are
// the pinned hls.js and mpegts.js that castgate serves under /vendor/.
// The page's state is kept in window.castgate for tests and the console.
'use strict';

const POLL_MS = 2000;
/// A playing stream whose time does not move for this long is restarted.
const STALL_MS = 8000;
/// hls.js whose buffer has not grown for this long, with more in the playlist, is moved on.
const UNSTICK_AFTER_MS = 700;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const name = params.get('stream') || '';
const format = params.get('format') === 'flv' ? 'flv' : 'hls';
// `&debug=1`: keep the player's own log (the newest lines) in window.castgate.log, for a bug report.
const debug = params.get('debug') === '1';
const LOG_LINES = 3000;
const video = $('video');
const page = (window.castgate = { state: 'waiting', engine: '', errors: [], starts: 0, latency: null, log: [] });

// A logger for hls.js's `debug` setting: timestamped lines, the oldest dropped past LOG_LINES.
function debugLogger() {
  const t0 = performance.now();
  const line = (level) => (...args) => {
    const text = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
    page.log.push(`${(performance.now() - t0).toFixed(0).padStart(7)} ${level} ${text}`);
    if (page.log.length > LOG_LINES) page.log.splice(0, page.log.length - LOG_LINES);
  };
  return { trace: line('T'), debug: line('D'), log: line('L'), info: line('I'), warn: line('W'), error: line('E') };
}

let player = null; // { engine, destroy(), latency() }
let playingPublish = null; // started_at_ms of the publish being played
let lastProgress = { time: -1, at: Date.now() };

// The multivariant playlist: the renditions (one today, a simulcast ladder later) with their
// codecs, so players pick what they can play.
const hlsUrl = `/hls/${encodeURIComponent(name)}/master.m3u8`;
const flvUrl = `/flv/${encodeURIComponent(name)}.flv`;

function setState(state, label, pillClass, overlayText) {
  page.state = state;
  document.body.dataset.state = state;
  $('state').textContent = label;
  $('state').className = `pill ${pillClass || ''}`;
  $('overlay').hidden = !overlayText;
  $('overlay-text').textContent = overlayText || '';
}

function playerError(message) {
  page.errors.push(message);
  $('error').textContent = `Player error: ${message}. Reconnecting…`;
  stopPlayer();
}

// ---- Players --------------------------------------------------------------------------------

// Safari (macOS, iOS) plays HLS itself, with the lowest battery cost; elsewhere hls.js feeds
// Media Source Extensions.
function useNativeHls() {
  const canPlay = video.canPlayType('application/vnd.apple.mpegurl') !== '';
  return canPlay && (/Apple/.test(navigator.vendor) || !(window.Hls && Hls.isSupported()));
}

function startHls() {
  if (useNativeHls()) {
    video.src = hlsUrl;
    return {
      engine: 'native HLS',
      destroy() {
        video.removeAttribute('src');
        video.load();
      },
      latency() {
        // EXT-X-PROGRAM-DATE-TIME gives the wall-clock time of the playhead.
        const start = video.getStartDate && video.getStartDate().getTime();
        return start ? (Date.now() - (start + video.currentTime * 1000)) / 1000 : null;
      },
    };
  }
  // Low-Latency HLS: hls.js follows the parts with blocking reloads and the preload hint, and
  // holds back PART-HOLD-BACK (three parts) from the live edge. No liveSync* setting here: any
  // of them overrides the playlist's hold-back in hls.js, low latency included.
  // maxLiveSyncPlaybackRate: play up to 10 % faster when behind the target (after a stall or
  // a late start) instead of staying behind for good.
  const stuck = { end: null, since: Date.now() };
  const hls = new Hls({
    lowLatencyMode: true,
    maxLiveSyncPlaybackRate: 1.1,
    backBufferLength: 30,
    debug: debug ? debugLogger() : false,
  });
  hls.on(Hls.Events.ERROR, (event, data) => {
    if (debug) page.log.push(`error event: ${data.type} ${data.details} fatal=${data.fatal}`);
    if (data.fatal) playerError(`${data.type} ${data.details}`);
  });
  hls.loadSource(hlsUrl);
  hls.attachMedia(video);
  return {
    engine: `hls.js ${Hls.version}`,
    stats() {
      // Whether hls.js follows parts (low latency) and how far behind it aims to play.
      const level = hls.levels && hls.levels[hls.currentLevel];
      const details = level && level.details;
      return {
        lowLatency: !!(details && details.partList && details.partList.length),
        partTarget: details ? details.partTarget : null,
        targetLatency: hls.targetLatency,
      };
    },
    destroy() {
      hls.destroy();
    },
    // hls.js raises its target by a second on each stall and then never seeks forward: after an
    // early stall it can stay seconds behind for good. Far behind its target, with the live
    // position already buffered, jump there.
    catchUp() {
      const live = hls.liveSyncPosition;
      if (!live || hls.latency === null || hls.latency < hls.targetLatency + 2) return false;
      const b = video.buffered;
      for (let i = 0; i < b.length; i++) {
        if (b.start(i) <= live && live < b.end(i)) {
          video.currentTime = live;
          return true;
        }
      }
      return false;
    },
    // hls.js 1.7 can stop loading for good when a segment is completed in the playlist while
    // the parts it loaded of it are still being parsed: it then takes the whole segment for
    // buffered up to its last part, never fetches that part, and waits until the playlist
    // slides on (seconds). Seen mostly on the first load, whose parsing is slowest. When the
    // buffer has not grown for a while, is nearly played out, and the playlist has more than a
    // second beyond it, jump to the next segment start (a keyframe) there: hls.js loads from it.
    unstick() {
      const level = hls.levels && hls.levels[hls.currentLevel];
      const details = level && level.details;
      const end = bufferEndAt(video.currentTime);
      if (!details || !details.live || end === null) return false;
      const now = Date.now();
      if (end !== stuck.end) {
        stuck.end = end;
        stuck.since = now;
        return false;
      }
      if (now - stuck.since < UNSTICK_AFTER_MS || end - video.currentTime > 0.5) return false;
      if (details.edge < end + 1) return false;
      const next = details.fragments.find((f) => f.start > end + 0.01);
      const start = next ? next.start : details.fragmentHint && details.fragmentHint.start;
      if (!(start > end)) return false;
      // 20 ms in (less than a frame): hls.js's sums of part durations put a boundary a hair
      // either side of the true start, and a hair early it would pick the stuck segment again.
      const target = start + 0.02;
      if (debug) page.log.push(`unstick: buffer ends ${end.toFixed(3)}, edge ${details.edge.toFixed(3)}: seek ${target.toFixed(3)}`);
      video.currentTime = target;
      stuck.since = now;
      // The stall was the loader's, not the network's: drop the second hls.js added to its target.
      if (details.partHoldBack && hls.targetLatency > details.partHoldBack) hls.targetLatency = details.partHoldBack;
      return true;
    },
    latency() {
      if (hls.playingDate) {
        const behind = (Date.now() - hls.playingDate.getTime()) / 1000;
        if (behind > 0 && behind < 120) return behind; // else the clocks disagree
      }
      return hls.latency || null;
    },
  };
}

/// The end of the buffered range holding `time` (or starting just after it), or null.
function bufferEndAt(time) {
  const b = video.buffered;
  for (let i = 0; i < b.length; i++) {
    if (b.start(i) <= time + 0.1 && time <= b.end(i)) return b.end(i);
  }
  return null;
}

function startFlv() {
  if (!window.mpegts || !mpegts.isSupported()) {
    throw new Error('this browser cannot play HTTP-FLV (no Media Source Extensions); use the HLS link');
  }
  const flv = mpegts.createPlayer(
    { type: 'flv', isLive: true, url: new URL(flvUrl, location.href).href },
    {
      enableWorker: false,
      lazyLoad: false,
      // Hand every chunk to the demuxer at once instead of stashing ~384 KB first (seconds of
      // video at webcam bitrates).
      enableStashBuffer: false,
      // Stay close to live by playing slightly faster (1.1x) when over 2 s behind, down to
      // 1 s; jump ahead only when far behind (after a stall), keeping 1 s in hand.
      liveSync: true,
      liveSyncMaxLatency: 2.0,
      liveSyncTargetLatency: 1.0,
      liveSyncPlaybackRate: 1.1,
      liveBufferLatencyChasing: true,
      liveBufferLatencyMaxLatency: 5.0,
      liveBufferLatencyMinRemain: 1.0,
    },
  );
  flv.on(mpegts.Events.ERROR, (type, detail) => playerError(`${type} ${detail}`));
  flv.attachMediaElement(video);
  flv.load();
  return {
    engine: `mpegts.js ${mpegts.version || ''}`.trim(),
    stats() {
      return flv.statisticsInfo; // download speed, decoded frames: for diagnosis
    },
    destroy() {
      flv.destroy();
    },
    latency() {
      // How far the playhead is behind the newest received frame.
      const b = video.buffered;
      return b.length ? b.end(b.length - 1) - video.currentTime : null;
    },
  };
}

async function startPlayer(publish) {
  stopPlayer();
  $('error').textContent = '';
  try {
    player = format === 'flv' ? startFlv() : startHls();
  } catch (e) {
    page.errors.push(e.message);
    $('error').textContent = e.message;
    return;
  }
  playingPublish = publish;
  page.stats = () => (player && player.stats ? player.stats() : null);
  page.starts += 1;
  page.engine = player.engine;
  $('engine').textContent = player.engine;
  lastProgress = { time: -1, at: Date.now() };
  try {
    await video.play();
  } catch (e) {
    // Autoplay refused (video is muted, so rare): a tap starts it.
    setState('live', 'Live', 'live', 'Tap to play');
  }
}

function stopPlayer() {
  if (player) {
    player.destroy();
    player = null;
  }
  playingPublish = null;
}

// ---- Is the stream live? --------------------------------------------------------------------

let polling = false;

async function poll() {
  if (polling) return; // a slow gateway: never run two polls at once
  polling = true;
  try {
    await pollOnce();
  } finally {
    polling = false;
  }
}

async function pollOnce() {
  let info = null;
  try {
    const response = await fetch('/api/streams', { cache: 'no-store' });
    const { streams } = await response.json();
    info = streams.find((s) => s.name === name) || null;
  } catch (e) {
    setState('waiting', 'Offline', 'warn', 'Cannot reach the gateway; retrying…');
    return;
  }
  if (player !== null && info && (info.state === 'reconnecting' || info.state === 'starting')) {
    // The publisher dropped and may be back within the gateway's reconnect grace: the same
    // stream goes on, so the player keeps playing (or waiting) rather than being torn down.
    return;
  }
  if (!info || info.state !== 'live') {
    const ended = player !== null;
    stopPlayer();
    const text = ended ? 'The broadcast ended. It will play again when it comes back.' : 'Waiting for the broadcast to start…';
    setState('waiting', info ? 'Starting' : 'Offline', '', text);
    $('viewers').textContent = '–';
    return;
  }
  $('viewers').textContent = String(info.viewers.hls + info.viewers.flv);
  if (info.width) {
    $('video-info').textContent = `${info.width}×${info.height}` + (info.frame_rate ? ` · ${Math.round(info.frame_rate)} fps` : '');
  }
  if (playingPublish !== info.started_at_ms) {
    // HLS needs its first segment before a player can load the playlist.
    if (format === 'hls' && !(await fetch(hlsUrl, { cache: 'no-store' })).ok) return;
    await startPlayer(info.started_at_ms);
  }
}

// Latency display and stall watchdog, every second.
function tick() {
  if (!player) {
    $('latency').textContent = '–';
    page.latency = null;
    return;
  }
  if (player.catchUp && player.catchUp()) page.liveJumps = (page.liveJumps || 0) + 1;
  const latency = player.latency();
  page.latency = latency;
  $('latency').textContent = latency === null ? '–' : `${latency.toFixed(1)} s`;
  if (video.currentTime !== lastProgress.time) {
    lastProgress = { time: video.currentTime, at: Date.now() };
    if (video.currentTime > 0 && page.state !== 'playing') setState('playing', 'Live', 'live', '');
  } else if (Date.now() - lastProgress.at > STALL_MS) {
    page.errors.push('stalled');
    stopPlayer(); // the next poll starts it again
  } else if (page.state !== 'playing') {
    setState('live', 'Live', 'live', 'Loading…');
  }
}

// The hls.js loader watch (see unstick), four times a second.
function watchLoader() {
  if (player && player.unstick && player.unstick()) page.unsticks = (page.unsticks || 0) + 1;
}

// ---- Wiring ---------------------------------------------------------------------------------

$('name').textContent = name || 'No stream';
document.title = `${name} · castgate`;
const other = format === 'flv' ? 'hls' : 'flv';
$('switch').textContent = format === 'flv' ? 'Switch to HLS' : 'Switch to low latency (FLV)';
$('switch').href = `?stream=${encodeURIComponent(name)}` + (other === 'flv' ? '&format=flv' : '');
$('unmute').addEventListener('click', (e) => {
  e.preventDefault();
  video.muted = !video.muted;
  $('unmute').textContent = video.muted ? 'Unmute' : 'Mute';
  video.play().catch(() => {});
});
$('overlay').addEventListener('click', () => video.play().catch(() => {}));

if (!name) {
  setState('waiting', 'No stream', 'warn', 'Add ?stream=NAME to the address.');
} else {
  setState('waiting', 'Offline', '', 'Connecting…');
  poll();
  setInterval(poll, POLL_MS);
  setInterval(tick, 1000);
  setInterval(watchLoader, 250);
}
