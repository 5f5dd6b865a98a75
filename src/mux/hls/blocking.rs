//! Blocking playlist reload and preload hints (RFC 8216bis §6.2.5.2, §6.2.6): the delivery
//! directives of a playlist request (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) and, against how far
//! the stream has got, whether the answer can go now, must wait, or is refused. Sans-IO: the
//! caller does the waiting (and its 3-target-duration timeout, which answers 503).

use super::playlist::LowLatency;
use super::stream::HlsProgress;

/// The delivery directives of a media playlist request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlaylistQuery {
    /// `_HLS_msn`: answer once the playlist holds this media sequence number.
    pub msn: Option<u64>,
    /// `_HLS_part`: ... and this part of it.
    pub part: Option<u64>,
    /// `_HLS_skip=YES` (or `v2`): a delta update is welcome.
    pub skip: bool,
}

/// Why a playlist request's query is refused (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("_HLS_part needs _HLS_msn")]
    PartWithoutMsn,
    #[error("_HLS_msn and _HLS_part must be unsigned integers")]
    BadNumber,
    #[error("_HLS_skip must be YES or v2")]
    BadSkip,
    #[error("a delivery directive is given twice")]
    Repeated,
}

/// Whether a waiting request can be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Answer now.
    Ready,
    /// Hold the request until the stream gets further.
    Wait,
    /// Beyond what will exist soon: refuse at once (400 for playlists, 404 for parts).
    TooFar,
}

/// Reads the delivery directives of a query string (without the `?`). Other parameters (cache
/// busters, tokens) are left alone.
pub fn parse_query(query: Option<&str>) -> Result<PlaylistQuery, QueryError> {
    let mut q = PlaylistQuery::default();
    let mut skip_seen = false;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "_HLS_msn" => &mut q.msn,
            "_HLS_part" => &mut q.part,
            "_HLS_skip" => {
                if std::mem::replace(&mut skip_seen, true) {
                    return Err(QueryError::Repeated);
                }
                q.skip = match value {
                    "YES" | "v2" => true,
                    _ => return Err(QueryError::BadSkip),
                };
                continue;
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(QueryError::Repeated);
        }
        let digits =
            !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit());
        *slot = Some(
            value
                .parse()
                .ok()
                .filter(|_| digits)
                .ok_or(QueryError::BadNumber)?,
        );
    }
    if q.part.is_some() && q.msn.is_none() {
        return Err(QueryError::PartWithoutMsn);
    }
    Ok(q)
}

/// How many parts beyond the last one a request may ask for (the Advance Part Limit): three
/// seconds' worth when parts are shorter than a second, else three parts.
pub fn advance_part_limit(ll: &LowLatency) -> u64 {
    if ll.part_target > 0.0 && ll.part_target < 1.0 {
        (3.0 / ll.part_target).ceil() as u64
    } else {
        3
    }
}

/// Whether a playlist request with `query` can be answered at `progress`. Without low latency
/// the playlist promises no blocking (no CAN-BLOCK-RELOAD), so every request is answered now.
pub fn playlist_readiness(
    query: &PlaylistQuery,
    progress: HlsProgress,
    ll: Option<&LowLatency>,
) -> Readiness {
    let (Some(ll), Some(mut msn)) = (ll, query.msn) else {
        return Readiness::Ready;
    };
    let mut part = query.part;
    // A part past the end of the last complete segment is that many parts into the next one
    // (a client asking for "the part after the last one I have").
    if let Some(p) = part {
        let last = progress.next_msn.checked_sub(1);
        if Some(msn) == last && progress.parts_in_last > 0 && p >= progress.parts_in_last {
            msn = progress.next_msn;
            part = Some(p - progress.parts_in_last);
        }
    }
    if progress.ended || msn < progress.next_msn {
        return Readiness::Ready;
    }
    // More than two segments past the last complete one (next_msn - 1).
    if msn > progress.next_msn.saturating_add(1) {
        return Readiness::TooFar;
    }
    let Some(part) = part else {
        return Readiness::Wait;
    };
    let parts_ahead = if msn == progress.next_msn {
        if part < progress.parts_in_open {
            return Readiness::Ready;
        }
        part - progress.parts_in_open + 1
    } else {
        // In the segment after the open one: at least this many parts ahead.
        part.saturating_add(1)
    };
    if parts_ahead > advance_part_limit(ll) {
        Readiness::TooFar
    } else {
        Readiness::Wait
    }
}

/// Whether a request for part file number `part` (a preload hint) can be answered: once the
/// part exists (or has expired, or the stream ended), at once; the next few parts wait.
pub fn part_readiness(part: u64, progress: HlsProgress, ll: &LowLatency) -> Readiness {
    if progress.ended || part < progress.next_part {
        Readiness::Ready
    } else if part - progress.next_part >= advance_part_limit(ll) {
        Readiness::TooFar
    } else {
        Readiness::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll() -> LowLatency {
        LowLatency {
            part_target: 0.2,
            part_hold_back: 0.6,
            hold_back: 9.0,
            can_skip_until: Some(18.0),
        }
    }

    /// Segment 10 is being written and has 3 parts, segment 9 had 5; parts 0..=52 exist.
    fn at() -> HlsProgress {
        HlsProgress {
            next_msn: 10,
            parts_in_open: 3,
            parts_in_last: 5,
            next_part: 53,
            ended: false,
        }
    }

    fn q(msn: u64, part: Option<u64>) -> PlaylistQuery {
        PlaylistQuery {
            msn: Some(msn),
            part,
            skip: false,
        }
    }

    #[test]
    fn query_directives_are_read_and_other_parameters_ignored() {
        assert_eq!(parse_query(None), Ok(PlaylistQuery::default()));
        assert_eq!(
            parse_query(Some("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES&token=x&t")),
            Ok(PlaylistQuery {
                msn: Some(12),
                part: Some(3),
                skip: true
            })
        );
        assert!(parse_query(Some("_HLS_skip=v2")).unwrap().skip);
        assert_eq!(parse_query(Some("_HLS_msn=7")).unwrap().msn, Some(7));
    }

    #[test]
    fn bad_directives_are_refused() {
        assert_eq!(
            parse_query(Some("_HLS_part=1")),
            Err(QueryError::PartWithoutMsn)
        );
        for bad in [
            "_HLS_msn=",
            "_HLS_msn=-1",
            "_HLS_msn=+1",
            "_HLS_msn=1x",
            "_HLS_msn",
        ] {
            assert_eq!(parse_query(Some(bad)), Err(QueryError::BadNumber), "{bad}");
        }
        assert_eq!(
            parse_query(Some("_HLS_msn=99999999999999999999999")),
            Err(QueryError::BadNumber)
        );
        assert_eq!(
            parse_query(Some("_HLS_msn=1&_HLS_msn=2")),
            Err(QueryError::Repeated)
        );
        assert_eq!(parse_query(Some("_HLS_skip=NO")), Err(QueryError::BadSkip));
        assert_eq!(
            parse_query(Some("_HLS_skip=YES&_HLS_skip=YES")),
            Err(QueryError::Repeated)
        );
    }

    #[test]
    fn past_and_present_are_answered_at_once() {
        let ll = ll();
        let ready = |query| playlist_readiness(&query, at(), Some(&ll));
        assert_eq!(ready(PlaylistQuery::default()), Readiness::Ready);
        assert_eq!(ready(q(3, None)), Readiness::Ready, "long gone");
        assert_eq!(ready(q(9, None)), Readiness::Ready, "last complete segment");
        assert_eq!(ready(q(9, Some(4))), Readiness::Ready, "its last part");
        assert_eq!(ready(q(8, Some(40))), Readiness::Ready, "long complete");
        assert_eq!(
            ready(q(9, Some(5))),
            Readiness::Ready,
            "= segment 10 part 0"
        );
        assert_eq!(
            ready(q(9, Some(7))),
            Readiness::Ready,
            "= segment 10 part 2"
        );
        assert_eq!(ready(q(10, Some(0))), Readiness::Ready);
        assert_eq!(ready(q(10, Some(2))), Readiness::Ready, "the newest part");
    }

    #[test]
    fn the_near_future_waits() {
        let ll = ll();
        let ready = |query| playlist_readiness(&query, at(), Some(&ll));
        assert_eq!(ready(q(10, Some(3))), Readiness::Wait, "the next part");
        assert_eq!(
            ready(q(9, Some(8))),
            Readiness::Wait,
            "past segment 9: 10/3"
        );
        assert_eq!(ready(q(10, None)), Readiness::Wait, "the open segment");
        assert_eq!(ready(q(11, None)), Readiness::Wait);
        assert_eq!(ready(q(11, Some(0))), Readiness::Wait);
        assert_eq!(
            ready(q(10, Some(3 + 14))),
            Readiness::Wait,
            "15 parts ahead: 3 s"
        );
    }

    #[test]
    fn too_far_ahead_is_refused() {
        let ll = ll();
        let ready = |query| playlist_readiness(&query, at(), Some(&ll));
        assert_eq!(ready(q(12, None)), Readiness::TooFar, "three segments on");
        assert_eq!(ready(q(u64::MAX, Some(u64::MAX))), Readiness::TooFar);
        assert_eq!(ready(q(10, Some(3 + 15))), Readiness::TooFar);
        assert_eq!(ready(q(11, Some(15))), Readiness::TooFar);
        assert_eq!(ready(q(11, Some(u64::MAX))), Readiness::TooFar);
        assert_eq!(ready(q(9, Some(5 + 3 + 15))), Readiness::TooFar);
    }

    #[test]
    fn an_ended_stream_or_plain_hls_never_waits() {
        let ll = ll();
        let ended = HlsProgress {
            ended: true,
            ..at()
        };
        assert_eq!(
            playlist_readiness(&q(11, Some(1)), ended, Some(&ll)),
            Readiness::Ready
        );
        assert_eq!(
            playlist_readiness(&q(11, Some(1)), at(), None),
            Readiness::Ready
        );
        assert_eq!(part_readiness(60, ended, &ll), Readiness::Ready);
    }

    #[test]
    fn hinted_parts_wait_and_far_ones_are_refused() {
        let ll = ll();
        assert_eq!(part_readiness(52, at(), &ll), Readiness::Ready);
        assert_eq!(
            part_readiness(0, at(), &ll),
            Readiness::Ready,
            "expired: 404 later"
        );
        assert_eq!(
            part_readiness(53, at(), &ll),
            Readiness::Wait,
            "the hinted part"
        );
        assert_eq!(part_readiness(53 + 14, at(), &ll), Readiness::Wait);
        assert_eq!(part_readiness(53 + 15, at(), &ll), Readiness::TooFar);
        assert_eq!(part_readiness(u64::MAX, at(), &ll), Readiness::TooFar);
    }

    #[test]
    fn the_advance_part_limit_is_three_seconds_of_short_parts_or_three_parts() {
        let mut l = ll();
        assert_eq!(advance_part_limit(&l), 15);
        l.part_target = 1.0;
        assert_eq!(advance_part_limit(&l), 3);
        l.part_target = 0.33;
        assert_eq!(advance_part_limit(&l), 10);
    }
}
