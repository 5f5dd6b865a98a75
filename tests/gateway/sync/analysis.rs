//! Finding the sync signal in a media file with ffmpeg: when each flash frame is shown, when
//! each tone burst starts, how long each stream lasts, all from decoded frames' timestamps on
//! the container's timeline, and pairing flashes with onsets.

use std::path::Path;

use super::super::support::ffprobe_json;

/// A flash frame has a mean luma above mid-grey (black is 16, white 235 in limited range).
const FLASH_LUMA: f64 = 128.0;
/// Tone detection works on RMS levels of 2 ms windows (two periods of the 1 kHz tone).
const ANALYSIS_RATE: u32 = 48_000;
const WINDOW_SAMPLES: u32 = 96;
/// A window is "tone" when it is at most this far below the loudest window: well above the
/// pre-echo a transform codec smears just before an attack, well below the burst itself.
const TONE_BELOW_PEAK_DB: f64 = 12.0;
/// Audio whose loudest window is quieter than this has no tone at all.
const MIN_PEAK_DB: f64 = -40.0;
/// A new onset needs this much silence first (bursts are 100 ms on, 900 ms off), so a dip
/// inside a burst is not a second onset.
const REARM_SECS: f64 = 0.3;

/// Escapes `path` for use as the file name of a `movie`/`amovie` source inside a filtergraph:
/// once for the filter's option parser (`\ ' : =`), then again for the graph parser
/// (`\ ' [ ] , ;`), as libavfilter documents for its two levels of quoting.
fn lavfi_path(path: &Path) -> String {
    let escape = |s: &str, special: &[char]| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if special.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    let option = escape(&path.to_string_lossy(), &['\\', '\'', ':', '=']);
    escape(&option, &['\\', '\'', '[', ']', ',', ';'])
}

/// Runs ffprobe over the frames a filtergraph outputs, returning `(pts_time, tag)` for every
/// frame that has both.
fn lavfi_frames(graph: &str, tag: &str) -> Vec<(f64, f64)> {
    let entries = format!("frame=pts_time:frame_tags={tag}");
    let json = ffprobe_json(
        &["-f", "lavfi", "-show_entries", &entries],
        Path::new(graph),
    );
    let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    json["frames"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .filter_map(|f| Some((number(&f["pts_time"])?, number(&f["tags"][tag])?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Times (s, from the decoded frames' pts) of the frames of the first video stream of `file`
/// whose mean luma is high.
pub fn flash_times(file: &Path) -> Vec<f64> {
    let graph = format!("movie={},signalstats", lavfi_path(file));
    lavfi_frames(&graph, "lavfi.signalstats.YAVG")
        .into_iter()
        .filter(|&(_, luma)| luma > FLASH_LUMA)
        .map(|(t, _)| t)
        .collect()
}

/// Times (s) at which a tone starts after silence in the first audio stream of `file`. Each
/// 2 ms window keeps the pts of its first sample, so a gap or an offset in the audio
/// timestamps shows up here as it would in a player.
pub fn tone_onsets(file: &Path) -> Vec<f64> {
    let graph = format!(
        "amovie={},aresample={ANALYSIS_RATE},asetnsamples=n={WINDOW_SAMPLES}:p=0,\
         astats=metadata=1:reset=1:measure_perchannel=none:measure_overall=RMS_level",
        lavfi_path(file)
    );
    onsets(&lavfi_frames(&graph, "lavfi.astats.Overall.RMS_level"))
}

/// Onsets in a list of `(time, RMS level in dBFS)` windows: the first tone window after at
/// least [`REARM_SECS`] without tone. Tone that is already sounding when the audio starts is
/// not an onset (its start is not in the file).
fn onsets(levels: &[(f64, f64)]) -> Vec<f64> {
    let peak = levels
        .iter()
        .map(|&(_, db)| db)
        .filter(|db| db.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if peak < MIN_PEAK_DB {
        return Vec::new();
    }
    let threshold = peak - TONE_BELOW_PEAK_DB;
    let mut found = Vec::new();
    let mut armed = false;
    let mut last_tone = f64::NEG_INFINITY;
    for &(t, db) in levels {
        if db >= threshold {
            if armed {
                found.push(t);
                armed = false;
            }
            last_tone = t;
        } else if t - last_tone >= REARM_SECS {
            armed = true;
        }
    }
    found
}

/// Presented length (s) of the first video and the first audio stream of `file`, from the
/// first decoded frame's pts to the end of the last one (0 for a missing stream). A video
/// frame lasts as long as the typical gap between frames; an audio frame its samples.
pub fn durations(file: &Path) -> (f64, f64) {
    let probe = |stream: &str, entries: &str| {
        ffprobe_json(&["-select_streams", stream, "-show_entries", entries], file)
    };
    let frames = |json: &serde_json::Value| json["frames"].as_array().cloned().unwrap_or_default();
    let number = |v: &serde_json::Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse::<f64>().ok()))
    };

    let mut video: Vec<f64> = frames(&probe("v:0", "frame=pts_time"))
        .iter()
        .filter_map(|f| number(&f["pts_time"]))
        .collect();
    video.sort_by(f64::total_cmp);
    let mut gaps: Vec<f64> = video.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let frame = gaps.get(gaps.len() / 2).copied().unwrap_or(0.0);
    let video_secs = match (video.first(), video.last()) {
        (Some(first), Some(last)) => last + frame - first,
        _ => 0.0,
    };

    // Older ffprobe versions give no sample rate per frame; the stream has it.
    let json = probe("a:0", "frame=pts_time,nb_samples:stream=sample_rate");
    let rate = number(&json["streams"][0]["sample_rate"]).filter(|&r| r > 0.0);
    let audio: Vec<(f64, f64)> = frames(&json)
        .iter()
        .filter_map(|f| Some((number(&f["pts_time"])?, number(&f["nb_samples"])? / rate?)))
        .collect();
    let start = audio.iter().map(|&(t, _)| t).fold(f64::INFINITY, f64::min);
    let end = audio
        .iter()
        .map(|&(t, d)| t + d)
        .fold(f64::NEG_INFINITY, f64::max);
    let audio_secs = if audio.is_empty() { 0.0 } else { end - start };
    (video_secs, audio_secs)
}

/// Codec of the first audio stream of `file`, if it has one.
pub fn audio_codec(file: &Path) -> Option<String> {
    let json = ffprobe_json(
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name",
        ],
        file,
    );
    json["streams"][0]["codec_name"]
        .as_str()
        .map(str::to_string)
}

/// The element of `times` nearest to `t`.
fn nearest(times: &[f64], t: f64) -> Option<f64> {
    times
        .iter()
        .copied()
        .min_by(|a, b| (a - t).abs().total_cmp(&(b - t).abs()))
}

/// Onset minus flash (s) for each flash that has an onset, and problems: flashes or onsets
/// with no partner within `tolerance`, and fewer than `min_pairs` pairs.
pub fn pair_up(
    flashes: &[f64],
    onsets: &[f64],
    tolerance: f64,
    min_pairs: usize,
) -> (Vec<f64>, Vec<String>) {
    let mut offsets = Vec::new();
    let mut problems = Vec::new();
    for &flash in flashes {
        match nearest(onsets, flash) {
            Some(onset) if (onset - flash).abs() <= tolerance => offsets.push(onset - flash),
            Some(onset) => problems.push(format!(
                "flash at {flash:.3} s: nearest tone onset {onset:.3} s is {:+.1} ms away",
                (onset - flash) * 1000.0
            )),
            None => problems.push(format!("flash at {flash:.3} s: no tone onset at all")),
        }
    }
    for &onset in onsets {
        if !nearest(flashes, onset).is_some_and(|flash| (onset - flash).abs() <= tolerance) {
            problems.push(format!("tone onset at {onset:.3} s has no flash near it"));
        }
    }
    if offsets.len() < min_pairs {
        problems.push(format!(
            "only {} flash/tone pairs found, want {min_pairs} ({} flashes, {} onsets)",
            offsets.len(),
            flashes.len(),
            onsets.len()
        ));
    }
    (offsets, problems)
}

/// Summary of onset-minus-flash offsets, for the test log.
pub fn describe(offsets: &[f64]) -> String {
    let ms: Vec<f64> = offsets.iter().map(|o| o * 1000.0).collect();
    let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    format!(
        "{} pairs, onset - flash: mean {mean:+.1} ms, min {min:+.1} ms, max {max:+.1} ms",
        ms.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_levels(spec: &[(f64, f64, f64)]) -> Vec<(f64, f64)> {
        // (from s, to s, level dB) in 2 ms windows.
        let mut out = Vec::new();
        for &(from, to, db) in spec {
            let mut t = from;
            while t < to - 1e-9 {
                out.push((t, db));
                t += 0.002;
            }
        }
        out
    }

    #[test]
    fn onset_is_the_first_tone_window_not_the_pre_echo_before_it() {
        let levels = ms_levels(&[
            (0.0, 0.990, f64::NEG_INFINITY),
            // Pre-echo of a transform codec: audible noise, far below the burst.
            (0.990, 1.0, -38.0),
            (1.0, 1.1, -9.0),
            (1.1, 2.0, -70.0),
            (2.0, 2.1, -9.0),
            (2.1, 2.5, f64::NEG_INFINITY),
        ]);
        let got = onsets(&levels);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            (got[0] - 1.0).abs() < 1e-9 && (got[1] - 2.0).abs() < 1e-9,
            "{got:?}"
        );
    }

    #[test]
    fn a_dip_inside_a_burst_is_not_a_second_onset() {
        let levels = ms_levels(&[
            (0.0, 1.0, -90.0),
            (1.0, 1.04, -9.0),
            (1.04, 1.046, -35.0),
            (1.046, 1.1, -9.0),
            (1.1, 1.5, -90.0),
        ]);
        assert_eq!(onsets(&levels).len(), 1);
    }

    #[test]
    fn a_burst_already_sounding_when_audio_starts_is_not_an_onset() {
        let levels = ms_levels(&[(0.05, 0.1, -9.0), (0.1, 1.0, -90.0), (1.0, 1.1, -9.0)]);
        let got = onsets(&levels);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!((got[0] - 1.0).abs() < 1e-9, "{got:?}");
    }

    #[test]
    fn quiet_noise_alone_has_no_onsets() {
        let levels = ms_levels(&[(0.0, 1.0, -80.0), (1.0, 1.1, -55.0), (1.1, 2.0, -80.0)]);
        assert!(onsets(&levels).is_empty());
    }

    #[test]
    fn stray_tone_and_lonely_flash_are_both_reported() {
        let flashes = [1.0, 2.0, 3.0];
        let onsets = [1.010, 2.5, 3.030];
        let (offsets, problems) = pair_up(&flashes, &onsets, 0.045, 2);
        assert_eq!(offsets.len(), 2);
        assert!((offsets[0] - 0.010).abs() < 1e-9 && (offsets[1] - 0.030).abs() < 1e-9);
        assert!(
            problems.iter().any(|p| p.starts_with("flash at 2.000 s")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("tone onset at 2.500 s")),
            "{problems:?}"
        );
    }
}
