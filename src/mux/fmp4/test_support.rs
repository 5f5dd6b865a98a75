//! Test-only helpers shared by the fMP4 and HLS tests: a minimal ISO BMFF box reader, real
//! H.264 parameter sets, and an ffmpeg/ffprobe round trip (clip generation, Annex B to AVCC).

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::{BufMut, Bytes, BytesMut};

/// SPS of an x264 baseline 320x240 stream (profile 66, constraint flags 0xc0, level 1.3).
pub(crate) const SPS_320X240: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
/// SPS of an x264 baseline 640x360 stream (level 3.0).
pub(crate) const SPS_640X360: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
    0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48,
];
/// The PPS x264 emits with both SPS above.
pub(crate) const PPS_X264: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

/// One parsed box: its type, where it starts in the parsed slice, its total size and its body
/// (for full boxes the body starts with version and flags).
#[derive(Debug)]
pub(crate) struct ParsedBox<'a> {
    pub kind: &'a str,
    pub offset: usize,
    pub size: usize,
    pub body: &'a [u8],
}

/// Splits `data` into consecutive boxes; an error if a size is inconsistent or bytes are left.
pub(crate) fn parse_boxes(data: &[u8]) -> Result<Vec<ParsedBox<'_>>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let header = data
            .get(pos..pos + 8)
            .ok_or_else(|| format!("truncated box header at {pos}"))?;
        let size32 = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
        let kind = std::str::from_utf8(&header[4..8]).map_err(|_| format!("bad type at {pos}"))?;
        let (size, header_len) = if size32 == 1 {
            let large = data
                .get(pos + 8..pos + 16)
                .ok_or_else(|| format!("truncated largesize at {pos}"))?;
            (u64::from_be_bytes(large.try_into().unwrap()) as usize, 16)
        } else {
            (size32, 8)
        };
        if size < header_len || pos + size > data.len() {
            return Err(format!("box {kind} at {pos}: size {size} out of range"));
        }
        out.push(ParsedBox {
            kind,
            offset: pos,
            size,
            body: &data[pos + header_len..pos + size],
        });
        pos += size;
    }
    Ok(out)
}

/// The child boxes of a container body (panics in tests if malformed).
pub(crate) fn children(body: &[u8]) -> Vec<ParsedBox<'_>> {
    parse_boxes(body).expect("well-formed children")
}

/// The body of the first child of type `kind`.
pub(crate) fn child<'a>(body: &'a [u8], kind: &str) -> Option<&'a [u8]> {
    children(body)
        .into_iter()
        .find(|b| b.kind == kind)
        .map(|b| b.body)
}

/// Follows a path of container boxes from the top level, e.g. `["moov", "trak", "mdia"]`.
pub(crate) fn find_path<'a>(data: &'a [u8], path: &[&str]) -> Option<&'a [u8]> {
    let mut cur = data;
    for kind in path {
        cur = child(cur, kind)?;
    }
    Some(cur)
}

pub(crate) fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(data[at..at + 4].try_into().unwrap())
}

pub(crate) fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(data[at..at + 2].try_into().unwrap())
}

/// True when both ffmpeg and ffprobe run; prints a notice otherwise so skipped checks are visible.
pub(crate) fn ffmpeg_available(test: &str) -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|tool| {
        Command::new(tool)
            .arg("-version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !ok {
        println!("NOTICE: {test} skipped its ffmpeg/ffprobe check: tools not installed");
    }
    ok
}

/// A fresh scratch directory for one test.
pub(crate) fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("castgate-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Encodes a `seconds`-long 320x240 25 fps baseline clip (GOP 25, no B-frames) as Annex B.
pub(crate) fn generate_h264_clip(dir: &Path, seconds: u32, gop: u32) -> Vec<u8> {
    generate_h264_clip_sized(dir, seconds, gop, (320, 240))
}

/// [`generate_h264_clip`] at `width` x `height`.
pub(crate) fn generate_h264_clip_sized(
    dir: &Path,
    seconds: u32,
    gop: u32,
    (width, height): (u32, u32),
) -> Vec<u8> {
    let path = dir.join(format!("clip-{width}x{height}.h264"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate=25"))
        .args(["-t", &seconds.to_string(), "-c:v", "libx264"])
        .args(["-profile:v", "baseline", "-bf", "0", "-g", &gop.to_string()])
        .args(["-f", "h264"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    std::fs::read(&path).expect("read clip")
}

/// Two `seconds`-long clips (GOP 25) that differ only in size, 320x240 and 640x360, cut into
/// access units: a publisher's resolution change.
pub(crate) fn clips_of_two_sizes(dir: &Path, seconds: u32) -> (Clip, Clip) {
    let small = access_units(&generate_h264_clip_sized(dir, seconds, 25, (320, 240)));
    let large = access_units(&generate_h264_clip_sized(dir, seconds, 25, (640, 360)));
    assert_ne!(small.sps, large.sps);
    (small, large)
}

/// The NAL units of an Annex B byte stream (start codes removed).
pub(crate) fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut e = starts.get(k + 1).map(|n| n - 3).unwrap_or(data.len());
        // Drop the leading zero of a following 4-byte start code (trailing_zero_8bits).
        while e > s && data[e - 1] == 0 {
            e -= 1;
        }
        nals.push(&data[s..e]);
    }
    nals
}

/// An H.264 elementary stream cut into access units.
pub(crate) struct Clip {
    pub sps: Bytes,
    pub pps: Bytes,
    /// (AVCC access unit without SPS/PPS/AUD, contains an IDR).
    pub frames: Vec<(Bytes, bool)>,
}

/// Groups NAL units into access units (ITU-T H.264 §7.4.1.2.3, simplified): once the current
/// unit has a slice, an AUD/SPS/PPS/SEI or a slice with first_mb_in_slice == 0 (the first bit
/// after the NAL header is 1, as ue(v) 0 is the single bit '1') starts the next unit.
pub(crate) fn access_units(annex_b: &[u8]) -> Clip {
    let mut sps = Bytes::new();
    let mut pps = Bytes::new();
    let mut frames = Vec::new();
    let mut cur = BytesMut::new();
    let mut cur_has_slice = false;
    let mut cur_idr = false;
    for nal in split_annex_b(annex_b) {
        let Some(&header) = nal.first() else { continue };
        let ty = header & 0x1f;
        let is_slice = ty == 1 || ty == 5;
        let first_mb_zero = is_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_unit = matches!(ty, 6..=9) || first_mb_zero;
        if cur_has_slice && starts_unit {
            frames.push((cur.split().freeze(), cur_idr));
            cur_has_slice = false;
            cur_idr = false;
        }
        match ty {
            7 => sps = Bytes::copy_from_slice(nal),
            8 => pps = Bytes::copy_from_slice(nal),
            9 => {}
            _ => {
                cur.put_u32(nal.len() as u32);
                cur.put_slice(nal);
                cur_has_slice |= is_slice;
                cur_idr |= ty == 5;
            }
        }
    }
    if cur_has_slice {
        frames.push((cur.freeze(), cur_idr));
    }
    Clip { sps, pps, frames }
}

/// ffprobe's view of one stream of a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ProbedStream {
    pub codec: String,
    pub width: u64,
    pub height: u64,
    pub frames: u64,
}

/// Every stream of `path` as ffprobe decodes it (`-count_frames`), plus whatever ffprobe
/// printed on stderr at `-v error` (empty for a clean file).
pub(crate) fn ffprobe_streams(path: &Path) -> (Vec<ProbedStream>, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,width,height,nb_read_frames")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let num = |v: &serde_json::Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
            .unwrap_or(0)
    };
    let streams = json["streams"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| ProbedStream {
            codec: s["codec_name"].as_str().unwrap_or("").to_string(),
            width: num(&s["width"]),
            height: num(&s["height"]),
            frames: num(&s["nb_read_frames"]),
        })
        .collect();
    (streams, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The size of every video frame of `path` as ffprobe decodes it, in order, plus whatever it
/// printed on stderr at `-v error` (empty when every frame decoded cleanly).
pub(crate) fn ffprobe_frame_sizes(path: &Path) -> (Vec<(u64, u64)>, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["frame=width,height", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let sizes = json["frames"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|f| {
            let n = |key: &str| f[key].as_u64().unwrap_or(0);
            (n("width"), n("height"))
        })
        .collect();
    (sizes, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Encodes `seconds` of a 48 kHz mono sine as AAC-LC in ADTS.
pub(crate) fn generate_aac_clip(dir: &Path, seconds: u32) -> Vec<u8> {
    let path = dir.join("clip.aac");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:sample_rate=48000")
        .args(["-t", &seconds.to_string(), "-c:a", "aac", "-f", "adts"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    std::fs::read(&path).expect("read clip")
}

/// Raw AAC frames of an ADTS stream and the AudioSpecificConfig its first header implies
/// (ISO/IEC 14496-3 §1.A.2: profile + 1 = audio object type; sampling index; channels).
pub(crate) fn adts_frames(data: &[u8]) -> (Bytes, Vec<Bytes>) {
    let mut frames = Vec::new();
    let mut asc = Bytes::new();
    let mut pos = 0;
    while pos + 7 <= data.len() {
        let h = &data[pos..pos + 7];
        assert!(h[0] == 0xff && h[1] & 0xf0 == 0xf0, "ADTS sync at {pos}");
        let header_len = if h[1] & 1 == 1 { 7 } else { 9 };
        let frame_len =
            (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        if asc.is_empty() {
            let aot = u16::from(h[2] >> 6) + 1;
            let freq = u16::from((h[2] >> 2) & 0xf);
            let chan = (u16::from(h[2] & 1) << 2) | u16::from(h[3] >> 6);
            asc = Bytes::copy_from_slice(&((aot << 11) | (freq << 7) | (chan << 3)).to_be_bytes());
        }
        frames.push(Bytes::copy_from_slice(
            &data[pos + header_len..pos + frame_len],
        ));
        pos += frame_len;
    }
    (asc, frames)
}

#[test]
fn access_units_keep_sei_with_the_idr_it_precedes() {
    // SPS, PPS, SEI, IDR slice (first_mb 0), then a P slice (first_mb 0): two units.
    let mut es = Vec::new();
    for nal in [
        SPS_320X240,
        PPS_X264,
        &[0x06, 0x05, 0x80][..],
        &[0x65, 0x88, 0x01][..],
        &[0x41, 0x9a, 0x02][..],
    ] {
        es.extend_from_slice(&[0, 0, 0, 1]);
        es.extend_from_slice(nal);
    }
    let clip = access_units(&es);
    assert_eq!(&clip.sps[..], SPS_320X240);
    assert_eq!(&clip.pps[..], PPS_X264);
    assert_eq!(clip.frames.len(), 2);
    assert_eq!(
        &clip.frames[0].0[..],
        &[0, 0, 0, 3, 0x06, 0x05, 0x80, 0, 0, 0, 3, 0x65, 0x88, 0x01]
    );
    assert!(clip.frames[0].1);
    assert!(!clip.frames[1].1);
}

/// One `traf` of a media segment as the tests see it.
#[derive(Debug)]
pub(crate) struct ParsedTraf {
    pub track_id: u32,
    pub base_media_decode_time: u64,
    /// (duration, size, flags) per sample.
    pub samples: Vec<(u32, u32, u32)>,
}

/// The `mfhd` sequence number and the `traf`s of a media segment written by `media_segment`
/// (every trun entry has duration, size and flags; composition offsets when trun flag 0x800).
pub(crate) fn parse_media_segment(seg: &[u8]) -> (u32, Vec<ParsedTraf>) {
    let top = parse_boxes(seg).expect("segment boxes");
    let moof = top.iter().find(|b| b.kind == "moof").expect("moof").body;
    let seq = u32_at(child(moof, "mfhd").expect("mfhd"), 4);
    let mut trafs = Vec::new();
    for traf in children(moof).into_iter().filter(|b| b.kind == "traf") {
        let tfhd = child(traf.body, "tfhd").expect("tfhd");
        let tfdt = child(traf.body, "tfdt").expect("tfdt");
        let trun = child(traf.body, "trun").expect("trun");
        let flags = u32_at(trun, 0) & 0xff_ffff;
        let entry = if flags & 0x800 != 0 { 16 } else { 12 };
        let count = u32_at(trun, 4) as usize;
        let samples = (0..count)
            .map(|i| {
                let at = 12 + i * entry;
                (u32_at(trun, at), u32_at(trun, at + 4), u32_at(trun, at + 8))
            })
            .collect();
        trafs.push(ParsedTraf {
            track_id: u32_at(tfhd, 4),
            base_media_decode_time: u64::from_be_bytes(tfdt[4..12].try_into().unwrap()),
            samples,
        });
    }
    (seq, trafs)
}
