// castgate browser test: the wall clock drawn into the picture, for glass-to-glass latency
// (tests/browser/glass.rs). The publisher page draws, on every frame of a 640x360 canvas,
// Date.now() as a barcode plus the same time as text, and publishes the canvas; on a viewer
// page the test draws the playing <video> onto a canvas and reads the barcode's cells back.
//
// The barcode: 4 rows of 20 cells of 32x32 px (each cell two H.264 macroblocks wide and high,
// on the macroblock grid) from y = 32, white = 1, black = 0, row by row, most significant bit
// first: 16 sync bits (0xB1CA), the 48-bit millisecond time, and a CRC-16/CCITT-FALSE of the
// time's 6 bytes. This file only draws and samples (the mean luma of each cell's central
// 16x16 px); the test decides the bits and rejects any frame whose sync, contrast or CRC do
// not check (glass.rs `decode`).
'use strict';

window.castgateClock = (() => {
  const WIDTH = 640;
  const HEIGHT = 360;
  const CELL = 32;
  const COLUMNS = 20;
  const ROWS = 4;
  const TOP = 32;
  const SYNC = 0xb1ca;

  // CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection.
  function crc16(bytes) {
    let crc = 0xffff;
    for (const byte of bytes) {
      crc ^= byte << 8;
      for (let i = 0; i < 8; i++) {
        crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
      }
    }
    return crc;
  }

  // The 80 bits for time `ms`, in cell order.
  function bits(ms) {
    const time = BigInt(ms) & ((1n << 48n) - 1n);
    const bytes = [];
    for (let i = 5; i >= 0; i--) bytes.push(Number((time >> BigInt(8 * i)) & 0xffn));
    const message = (BigInt(SYNC) << 64n) | (time << 16n) | BigInt(crc16(bytes));
    const out = [];
    for (let i = 79; i >= 0; i--) out.push(Number((message >> BigInt(i)) & 1n));
    return out;
  }

  function draw(ctx, ms, frame) {
    ctx.fillStyle = '#808080';
    ctx.fillRect(0, 0, WIDTH, HEIGHT);
    bits(ms).forEach((bit, i) => {
      ctx.fillStyle = bit ? '#ffffff' : '#000000';
      ctx.fillRect((i % COLUMNS) * CELL, TOP + Math.floor(i / COLUMNS) * CELL, CELL, CELL);
    });
    ctx.fillStyle = '#ffffff';
    ctx.font = 'bold 48px monospace';
    ctx.textBaseline = 'top';
    ctx.fillText(new Date(ms).toISOString().slice(11, 23), 24, 200);
    ctx.font = '24px monospace';
    ctx.fillText(`castgate glass-to-glass clock · frame ${frame}`, 24, 280);
  }

  let canvas = null;

  // Starts drawing at 30 fps onto a canvas in the page; returns its video track.
  function start() {
    canvas = document.createElement('canvas');
    canvas.width = WIDTH;
    canvas.height = HEIGHT;
    document.body.appendChild(canvas);
    const ctx = canvas.getContext('2d');
    let frame = 0;
    const tick = () => draw(ctx, Date.now(), frame++);
    tick();
    setInterval(tick, 1000 / 30);
    return canvas.captureStream(30).getVideoTracks()[0];
  }

  let scratch = null;

  // The mean luma (0..255) of each cell's centre in `source` (a <video> or <canvas>), scaled to
  // 640x360 first; null when it has no picture yet.
  function lumas(source) {
    const width = source.videoWidth || source.width;
    const height = source.videoHeight || source.height;
    if (!width || !height) return null;
    if (!scratch) {
      scratch = document.createElement('canvas');
      scratch.width = WIDTH;
      scratch.height = HEIGHT;
    }
    const ctx = scratch.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(source, 0, 0, WIDTH, HEIGHT);
    const data = ctx.getImageData(0, TOP, COLUMNS * CELL, ROWS * CELL).data;
    const out = [];
    for (let i = 0; i < COLUMNS * ROWS; i++) {
      const x0 = (i % COLUMNS) * CELL + CELL / 4;
      const y0 = Math.floor(i / COLUMNS) * CELL + CELL / 4;
      let sum = 0;
      for (let y = y0; y < y0 + CELL / 2; y++) {
        for (let x = x0; x < x0 + CELL / 2; x++) {
          const p = (y * COLUMNS * CELL + x) * 4;
          sum += 0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2];
        }
      }
      out.push(Math.round((sum / (CELL * CELL / 4)) * 10) / 10);
    }
    return out;
  }

  // The next frame `video` shows (requestVideoFrameCallback), read when it is shown: `at` is
  // the wall-clock time it is expected on screen. Without a new frame within 300 ms, the frame
  // on screen now (`via: 'now'`).
  function sampleVideo(video) {
    return new Promise((resolve) => {
      let done = false;
      const finish = (at, via) => {
        if (done) return;
        done = true;
        resolve({ at, via, lumas: lumas(video) });
      };
      if (video.requestVideoFrameCallback) {
        video.requestVideoFrameCallback((now, meta) =>
          finish(Date.now() + (meta.expectedDisplayTime - performance.now()), 'frame'));
      }
      setTimeout(() => finish(Date.now(), 'now'), 300);
    });
  }

  // The publisher's own canvas, read now: checks the instrument without any video path.
  function sampleCanvas() {
    return { at: Date.now(), via: 'canvas', lumas: canvas ? lumas(canvas) : null };
  }

  return { start, sampleVideo, sampleCanvas };
})();
