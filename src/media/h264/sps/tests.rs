//! SPS parser tests: real x264 parameter sets, hand-built SPSs for the syntax x264 never emits
//! (POC type 1, SPS scaling lists, separate colour planes, odd crops), and garbage input.

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::super::test_vectors::{self as tv, Vector};
use super::test_builder::{build_sps, Fields, Poc, Vui};
use super::*;

fn check(v: &Vector, profile: u8, constraints: u8, level: u8, w: u32, h: u32, fps: f64) {
    let info = parse_sps(v.sps).expect("real SPS parses");
    assert_eq!(
        (info.profile_idc, info.constraint_flags, info.level_idc),
        (profile, constraints, level)
    );
    assert_eq!((info.width, info.height), (w, h), "size");
    let got = info.frame_rate.expect("x264 writes VUI timing");
    assert!((got - fps).abs() < 1e-9, "frame rate {got} != {fps}");
}

// ---- real encoder output -----------------------------------------------------------------

#[test]
fn x264_high_720p30() {
    check(&tv::HIGH_720P30, 100, 0x00, 31, 1280, 720, 30.0);
}

#[test]
fn x264_high10_1080p_crops_eight_lines() {
    check(&tv::HIGH10_1080P25, 110, 0x00, 40, 1920, 1080, 25.0);
    let d = parse_sps_details(tv::HIGH10_1080P25.sps).unwrap();
    assert_eq!((d.chroma_format_idc, d.bit_depth_luma_minus8), (1, 2));
    assert_eq!(d.bit_depth_chroma_minus8, 2);
}

#[test]
fn x264_high422_reads_chroma_format_2() {
    check(&tv::HIGH422_720P50, 122, 0x00, 32, 1280, 720, 50.0);
    assert_eq!(
        parse_sps_details(tv::HIGH422_720P50.sps)
            .unwrap()
            .chroma_format_idc,
        2
    );
}

#[test]
fn x264_high444_reads_separate_colour_plane_flag() {
    check(&tv::HIGH444_720P30, 244, 0x00, 31, 1280, 720, 30.0);
    assert_eq!(
        parse_sps_details(tv::HIGH444_720P30.sps)
            .unwrap()
            .chroma_format_idc,
        3
    );
}

#[test]
fn x264_interlaced_576i_counts_both_fields() {
    // pic_height_in_map_units_minus1 = 17: 18 field MB rows → 36 frame MB rows = 576 lines.
    check(&tv::INTERLACED_576I25, 100, 0x00, 30, 720, 576, 25.0);
}

#[test]
fn x264_main_854x480_crops_right_columns() {
    check(&tv::MAIN_854X480, 77, 0x40, 31, 854, 480, 30.0);
}

#[test]
fn x264_baseline_360p_crops_bottom_lines() {
    check(&tv::BASELINE_360P30, 66, 0xc0, 30, 640, 360, 30.0);
    check(&tv::BASELINE_854X480, 66, 0xc0, 31, 854, 480, 30.0);
    check(&tv::BASELINE_320X240_25, 66, 0xc0, 31, 320, 240, 25.0);
}

#[test]
fn ntsc_rate_from_1001_ticks() {
    check(&tv::NTSC_640X480, 66, 0xc0, 30, 640, 480, 30000.0 / 1001.0);
}

#[test]
fn chromium_constrained_baseline_42e01f() {
    check(
        &tv::CHROMIUM_BASELINE_720P30,
        0x42,
        0xe0,
        0x1f,
        1280,
        720,
        30.0,
    );
}

#[test]
fn openh264_style_sps_without_vui_has_no_frame_rate() {
    let sps = build_sps(&Fields {
        profile_idc: 66,
        constraint_flags: 0xe0,
        poc: Poc::Type2,
        width_mbs_minus1: 39,
        height_map_units_minus1: 29,
        ..Fields::default()
    });
    let info = parse_sps(&sps).unwrap();
    assert_eq!((info.width, info.height, info.frame_rate), (640, 480, None));
}

// ---- syntax x264 does not emit -------------------------------------------------------------

#[test]
fn poc_type_1_cycle_is_skipped() {
    let sps = build_sps(&Fields {
        poc: Poc::Type1 {
            offsets: vec![4, -3, 100, -1000],
        },
        width_mbs_minus1: 21,
        height_map_units_minus1: 17,
        vui: Some(Vui {
            extended_sar: false,
            colour_description: false,
            chroma_loc: false,
            timing: Some((1, 48)),
        }),
        ..Fields::default()
    });
    let info = parse_sps(&sps).unwrap();
    assert_eq!((info.width, info.height), (352, 288));
    assert_eq!(info.frame_rate, Some(24.0));
}

#[test]
fn sps_scaling_lists_including_early_zero_are_skipped() {
    // List 0 ends early: 8 + (-8) = 0 stops it after one delta (§7.3.2.1.1.1). List 6 (8x8)
    // codes all 64 deltas. The rest are absent.
    let mut lists: Vec<Option<Vec<i32>>> = vec![None; 8];
    lists[0] = Some(vec![-8]);
    lists[1] = Some(vec![2, 3, -1, 0, 5, -7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    lists[6] = Some((0..64).map(|i| if i % 2 == 0 { 3 } else { -2 }).collect());
    let sps = build_sps(&Fields {
        scaling_lists: Some(lists),
        vui: Some(Vui {
            extended_sar: true,
            colour_description: true,
            chroma_loc: true,
            timing: Some((1001, 120_000)),
        }),
        ..Fields::default()
    });
    let info = parse_sps(&sps).unwrap();
    assert_eq!((info.width, info.height), (1280, 720));
    assert_eq!(info.frame_rate, Some(120_000.0 / 2002.0));
}

#[test]
fn scaling_lists_for_444_number_twelve() {
    let mut lists: Vec<Option<Vec<i32>>> = vec![None; 12];
    lists[11] = Some(vec![0; 64]);
    let sps = build_sps(&Fields {
        profile_idc: 244,
        chroma_format_idc: 3,
        scaling_lists: Some(lists),
        crop: Some([0, 3, 0, 5]),
        ..Fields::default()
    });
    // 4:4:4 crop units are 1x1.
    let info = parse_sps(&sps).unwrap();
    assert_eq!((info.width, info.height), (1277, 715));
}

#[test]
fn separate_colour_planes_crop_in_luma_units() {
    let sps = build_sps(&Fields {
        profile_idc: 244,
        chroma_format_idc: 3,
        separate_colour_plane: true,
        crop: Some([1, 1, 2, 2]),
        ..Fields::default()
    });
    let info = parse_sps(&sps).unwrap();
    assert_eq!((info.width, info.height), (1278, 716));
}

#[test]
fn chroma_422_crops_two_columns_one_line_per_unit() {
    let sps = build_sps(&Fields {
        profile_idc: 122,
        chroma_format_idc: 2,
        crop: Some([0, 3, 0, 3]),
        ..Fields::default()
    });
    let info = parse_sps(&sps).unwrap();
    assert_eq!((info.width, info.height), (1274, 717));
}

#[test]
fn monochrome_interlaced_crop_units_double_vertically() {
    let sps = build_sps(&Fields {
        profile_idc: 100,
        chroma_format_idc: 0,
        frame_mbs_only: false,
        height_map_units_minus1: 17,
        width_mbs_minus1: 44,
        crop: Some([1, 0, 0, 2]),
        ..Fields::default()
    });
    let info = parse_sps(&sps).unwrap();
    assert_eq!((info.width, info.height), (719, 572));
}

#[test]
fn insane_vui_timing_gives_no_frame_rate() {
    for timing in [(0, 60), (1, 0), (1, 60_000), (u32::MAX, 1)] {
        let sps = build_sps(&Fields {
            vui: Some(Vui {
                extended_sar: false,
                colour_description: false,
                chroma_loc: false,
                timing: Some(timing),
            }),
            ..Fields::default()
        });
        let info = parse_sps(&sps).unwrap();
        assert_eq!(info.frame_rate.filter(|f| *f >= 1.0), None, "{timing:?}");
    }
}

#[test]
fn truncated_vui_keeps_size_but_drops_frame_rate() {
    // The real 720p SPS cut inside num_units_in_tick (SPS bits 92..124, after the picture size).
    let cut = &tv::HIGH_720P30.sps[..14];
    let info = parse_sps(cut).unwrap();
    assert_eq!(
        (info.width, info.height, info.frame_rate),
        (1280, 720, None)
    );
}

// ---- errors and garbage ----------------------------------------------------------------

#[test]
fn wrong_nal_type_and_empty_input_are_errors() {
    assert_eq!(parse_sps(&[]), Err(H264Error::Empty));
    assert_eq!(
        parse_sps(tv::HIGH_720P30.pps),
        Err(H264Error::WrongNalType {
            expected: 7,
            found: 8
        })
    );
    assert_eq!(parse_sps(&[0x67, 0x64, 0x00]), Err(H264Error::Truncated));
}

#[test]
fn every_prefix_of_a_real_sps_is_an_error_or_a_full_size() {
    let sps = tv::BASELINE_360P30.sps;
    for len in 0..sps.len() {
        match parse_sps(&sps[..len]) {
            Ok(info) => assert_eq!((info.width, info.height), (640, 360), "prefix {len}"),
            Err(e) => assert!(
                matches!(e, H264Error::Truncated | H264Error::Empty),
                "prefix {len}: {e}"
            ),
        }
    }
}

#[test]
fn out_of_range_fields_are_rejected() {
    // sps_id 0 ('1'), log2_max_frame_num_minus4 0 ('1'), pic_order_cnt_type 3 ('00100').
    assert_eq!(
        parse_sps(&[0x67, 0x42, 0xc0, 0x1e, 0b1100_1000, 0x00]),
        Err(H264Error::InvalidSps("pic_order_cnt_type > 2"))
    );
    // chroma_format_idc 4 ('00101') in a High SPS.
    assert_eq!(
        parse_sps(&[0x67, 100, 0x00, 0x1f, 0b1001_0100, 0x00]),
        Err(H264Error::InvalidSps("chroma_format_idc > 3"))
    );
    let crop_all = build_sps(&Fields {
        crop: Some([0, 0, 0, 360]),
        ..Fields::default()
    });
    assert_eq!(
        parse_sps(&crop_all),
        Err(H264Error::InvalidSps(
            "frame cropping removes the whole picture"
        ))
    );
    let huge = build_sps(&Fields {
        width_mbs_minus1: u32::MAX - 1,
        ..Fields::default()
    });
    assert_eq!(
        parse_sps(&huge),
        Err(H264Error::InvalidSps("picture width too large"))
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x05ee_d264);
    let mut ok = 0;
    for _ in 0..20_000 {
        let len = rng.random_range(0..48);
        let mut buf = vec![0u8; len];
        rng.fill(&mut buf[..]);
        if let Some(b) = buf.first_mut() {
            *b = 0x67; // get past the type check most of the time
        }
        if let Ok(info) = parse_sps(&buf) {
            assert!(info.width > 0 && info.height > 0);
            ok += 1;
        }
    }
    // Random bytes do parse sometimes; the point is that nothing panicked.
    assert!(ok < 20_000);
}

#[test]
fn bit_flipped_real_sps_never_panic() {
    let mut rng = StdRng::seed_from_u64(42);
    let all = [
        &tv::HIGH_720P30,
        &tv::HIGH10_1080P25,
        &tv::HIGH444_720P30,
        &tv::INTERLACED_576I25,
        &tv::MAIN_854X480,
        &tv::NTSC_640X480,
    ];
    for v in all {
        for _ in 0..3_000 {
            let mut buf = v.sps.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(1..buf.len());
                buf[i] ^= 1 << rng.random_range(0..8);
            }
            if let Ok(info) = parse_sps(&buf) {
                assert!(info.width > 0 && info.height > 0);
                assert!(info.frame_rate.is_none_or(|f| f > 0.0 && f <= 1000.0));
            }
        }
    }
}
