//! Sequence parameter set parsing (H.264 §7.3.2.1.1 and Annex E VUI): profile, level, the
//! displayed picture size after cropping, and the frame rate from VUI timing info.

use super::bits::{remove_emulation_prevention, BitReader};
use super::{nal, nal_type, H264Error};

/// What castgate needs from an SPS.
#[derive(Debug, Clone, PartialEq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    /// The whole byte after `profile_idc`: constraint_set0..5 flags and the 2 reserved bits.
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Displayed width in luma samples (frame cropping applied).
    pub width: u32,
    /// Displayed height in luma samples (frame cropping applied, fields counted as frames).
    pub height: u32,
    /// `time_scale / (2 * num_units_in_tick)` from VUI timing info, when present and sane.
    pub frame_rate: Option<f64>,
}

/// [`SpsInfo`] plus the fields the avcC high-profile extension carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpsDetails {
    pub info: SpsInfo,
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
}

/// Frame rates outside (0, MAX_SANE_FRAME_RATE] are treated as absent: encoders sometimes
/// write placeholder timing (e.g. time_scale 1, or huge ticks).
const MAX_SANE_FRAME_RATE: f64 = 1000.0;

/// Parses an SPS NAL unit, `nal` including its 1-byte header (type 7).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264Error> {
    parse_sps_details(nal).map(|d| d.info)
}

/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices (§7.3.2.1.1).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

pub(crate) fn parse_sps_details(nal: &[u8]) -> Result<SpsDetails, H264Error> {
    let (&header, payload) = nal.split_first().ok_or(H264Error::Empty)?;
    let found = nal_type(header);
    if found != nal::SPS {
        return Err(H264Error::WrongNalType {
            expected: nal::SPS,
            found,
        });
    }
    let rbsp = remove_emulation_prevention(payload);
    let mut r = BitReader::new(&rbsp);

    let profile_idc = r.read_u8()?;
    let constraint_flags = r.read_u8()?;
    let level_idc = r.read_u8()?;
    if r.read_ue()? > 31 {
        return Err(H264Error::InvalidSps("seq_parameter_set_id > 31"));
    }

    let mut chroma_format_idc = 1u8; // 4:2:0 when absent (§7.4.2.1.1)
    let mut separate_colour_plane = false;
    let mut bit_depth_luma_minus8 = 0u8;
    let mut bit_depth_chroma_minus8 = 0u8;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = small_ue(&mut r, 3, "chroma_format_idc > 3")?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.read_bit()?;
        }
        bit_depth_luma_minus8 = small_ue(&mut r, 6, "bit_depth_luma_minus8 > 6")?;
        bit_depth_chroma_minus8 = small_ue(&mut r, 6, "bit_depth_chroma_minus8 > 6")?;
        let _qpprime_y_zero_transform_bypass = r.read_bit()?;
        if r.read_bit()? {
            // seq_scaling_matrix_present_flag: 8 lists, 12 for 4:4:4.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    small_ue(&mut r, 12, "log2_max_frame_num_minus4 > 12")?;
    match r.read_ue()? {
        0 => {
            small_ue(&mut r, 12, "log2_max_pic_order_cnt_lsb_minus4 > 12")?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.read_bit()?;
            let _offset_for_non_ref_pic = r.read_se()?;
            let _offset_for_top_to_bottom_field = r.read_se()?;
            let cycle = small_ue(&mut r, 255, "num_ref_frames_in_pic_order_cnt_cycle > 255")?;
            for _ in 0..cycle {
                let _offset_for_ref_frame = r.read_se()?;
            }
        }
        2 => {}
        _ => return Err(H264Error::InvalidSps("pic_order_cnt_type > 2")),
    }
    let _max_num_ref_frames = r.read_ue()?;
    let _gaps_in_frame_num_allowed = r.read_bit()?;
    let width_mbs = u64::from(r.read_ue()?) + 1;
    let height_map_units = u64::from(r.read_ue()?) + 1;
    let frame_mbs_only = r.read_bit()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.read_bit()?;
    }
    let _direct_8x8_inference = r.read_bit()?;
    let mut crop = [0u64; 4]; // left, right, top, bottom
    if r.read_bit()? {
        for c in &mut crop {
            *c = u64::from(r.read_ue()?);
        }
    }
    // The VUI is optional decoration for us: a damaged one costs the frame rate, not the SPS.
    let frame_rate = if r.read_bit()? {
        read_vui_frame_rate(&mut r).ok().flatten()
    } else {
        None
    };

    // §7.4.2.1.1: frame height counts both fields when frame_mbs_only_flag is 0; crop offsets
    // are in chroma sample units (CropUnitX/Y, equations 7-19 to 7-22).
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let full_width = width_mbs * 16;
    let full_height = height_map_units * field_factor * 16;
    let crop_x = crop_unit_x * (crop[0] + crop[1]);
    let crop_y = crop_unit_y * (crop[2] + crop[3]);
    if crop_x >= full_width || crop_y >= full_height {
        return Err(H264Error::InvalidSps(
            "frame cropping removes the whole picture",
        ));
    }
    let width = u32::try_from(full_width - crop_x)
        .map_err(|_| H264Error::InvalidSps("picture width too large"))?;
    let height = u32::try_from(full_height - crop_y)
        .map_err(|_| H264Error::InvalidSps("picture height too large"))?;

    Ok(SpsDetails {
        info: SpsInfo {
            profile_idc,
            constraint_flags,
            level_idc,
            width,
            height,
            frame_rate,
        },
        chroma_format_idc,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
    })
}

/// A ue(v) with a small upper bound, as u8.
fn small_ue(r: &mut BitReader<'_>, max: u8, why: &'static str) -> Result<u8, H264Error> {
    let v = r.read_ue()?;
    if v > u32::from(max) {
        return Err(H264Error::InvalidSps(why));
    }
    Ok(v as u8)
}

/// scaling_list() (§7.3.2.1.1.1): only the bit positions matter here, so values are walked
/// with the same delta rules but thrown away.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), H264Error> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = i64::from(r.read_se()?);
            if !(-128..=127).contains(&delta) {
                return Err(H264Error::InvalidSps("delta_scale outside -128..=127"));
            }
            next_scale = (last_scale + delta).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Walks vui_parameters() (Annex E.1.1) up to timing info and returns the frame rate.
fn read_vui_frame_rate(r: &mut BitReader<'_>) -> Result<Option<f64>, H264Error> {
    if r.read_bit()? {
        // aspect_ratio_info_present_flag
        const EXTENDED_SAR: u8 = 255;
        if r.read_u8()? == EXTENDED_SAR {
            r.skip_bits(32)?; // sar_width, sar_height
        }
    }
    if r.read_bit()? {
        r.skip_bits(1)?; // overscan_appropriate_flag
    }
    if r.read_bit()? {
        // video_signal_type_present_flag: video_format(3), video_full_range_flag(1)
        r.skip_bits(4)?;
        if r.read_bit()? {
            r.skip_bits(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.read_bit()? {
        r.read_ue()?; // chroma_sample_loc_type_top_field
        r.read_ue()?; // chroma_sample_loc_type_bottom_field
    }
    if !r.read_bit()? {
        return Ok(None); // timing_info_present_flag
    }
    let num_units_in_tick = r.read_bits(32)?;
    let time_scale = r.read_bits(32)?;
    if num_units_in_tick == 0 || time_scale == 0 {
        return Ok(None);
    }
    // Annex E.2.1: one frame lasts two ticks (a tick is a field period).
    let fps = f64::from(time_scale) / (2.0 * f64::from(num_units_in_tick));
    Ok((fps > 0.0 && fps <= MAX_SANE_FRAME_RATE).then_some(fps))
}

#[cfg(test)]
mod test_builder;
#[cfg(test)]
mod tests;
