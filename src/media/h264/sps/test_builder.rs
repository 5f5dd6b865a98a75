//! Test-only SPS builder: writes SPS NAL units field by field (with emulation prevention) so
//! tests can cover syntax x264 never emits. Checked once against ffmpeg's trace_headers.

use super::has_chroma_info;

#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    used: u8, // bits used in the last byte (0 = start a new byte)
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.used == 0 {
            self.bytes.push(0);
        }
        if b {
            *self.bytes.last_mut().unwrap() |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }
    fn u(&mut self, n: u32, v: u64) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }
    fn ue(&mut self, v: u32) {
        let x = u64::from(v) + 1;
        let len = 64 - x.leading_zeros();
        self.u(len - 1, 0);
        self.u(len, x);
    }
    fn se(&mut self, v: i32) {
        let k = if v > 0 {
            2 * v as i64 - 1
        } else {
            -2 * v as i64
        };
        self.ue(k as u32);
    }
    /// rbsp_trailing_bits, then emulation prevention, behind an SPS NAL header (0x67).
    fn into_sps_nal(mut self) -> Vec<u8> {
        self.bit(true);
        while self.used != 0 {
            self.bit(false);
        }
        crate::media::h264::bits::nal_from_rbsp(0x67, &self.bytes)
    }
}

pub(crate) enum Poc {
    Type0 { log2_max_lsb_minus4: u32 },
    Type1 { offsets: Vec<i32> },
    Type2,
}

/// SPS fields a test may vary; everything else takes a fixed plausible value.
pub(crate) struct Fields {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub separate_colour_plane: bool,
    pub bit_depth_minus8: u32,
    /// Per list: None = not present, Some(deltas) = the delta_scale values coded.
    pub scaling_lists: Option<Vec<Option<Vec<i32>>>>,
    pub poc: Poc,
    pub width_mbs_minus1: u32,
    pub height_map_units_minus1: u32,
    pub frame_mbs_only: bool,
    pub crop: Option<[u32; 4]>,
    pub vui: Option<Vui>,
}

pub(crate) struct Vui {
    pub extended_sar: bool,
    pub colour_description: bool,
    pub chroma_loc: bool,
    pub timing: Option<(u32, u32)>,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            profile_idc: 100,
            constraint_flags: 0,
            level_idc: 31,
            chroma_format_idc: 1,
            separate_colour_plane: false,
            bit_depth_minus8: 0,
            scaling_lists: None,
            poc: Poc::Type0 {
                log2_max_lsb_minus4: 2,
            },
            width_mbs_minus1: 79,
            height_map_units_minus1: 44,
            frame_mbs_only: true,
            crop: None,
            vui: None,
        }
    }
}

pub(crate) fn build_sps(f: &Fields) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.u(8, f.profile_idc.into());
    w.u(8, f.constraint_flags.into());
    w.u(8, f.level_idc.into());
    w.ue(0); // seq_parameter_set_id
    if has_chroma_info(f.profile_idc) {
        w.ue(f.chroma_format_idc);
        if f.chroma_format_idc == 3 {
            w.bit(f.separate_colour_plane);
        }
        w.ue(f.bit_depth_minus8);
        w.ue(f.bit_depth_minus8);
        w.bit(false); // qpprime_y_zero_transform_bypass_flag
        w.bit(f.scaling_lists.is_some());
        for list in f.scaling_lists.iter().flatten() {
            w.bit(list.is_some());
            for &d in list.iter().flatten() {
                w.se(d);
            }
        }
    }
    w.ue(0); // log2_max_frame_num_minus4
    match &f.poc {
        Poc::Type0 {
            log2_max_lsb_minus4,
        } => {
            w.ue(0);
            w.ue(*log2_max_lsb_minus4);
        }
        Poc::Type1 { offsets } => {
            w.ue(1);
            w.bit(false); // delta_pic_order_always_zero_flag
            w.se(-2); // offset_for_non_ref_pic
            w.se(1); // offset_for_top_to_bottom_field
            w.ue(offsets.len() as u32);
            for &o in offsets {
                w.se(o);
            }
        }
        Poc::Type2 => w.ue(2),
    }
    w.ue(3); // max_num_ref_frames
    w.bit(false); // gaps_in_frame_num_value_allowed_flag
    w.ue(f.width_mbs_minus1);
    w.ue(f.height_map_units_minus1);
    w.bit(f.frame_mbs_only);
    if !f.frame_mbs_only {
        w.bit(true); // mb_adaptive_frame_field_flag
    }
    w.bit(true); // direct_8x8_inference_flag
    w.bit(f.crop.is_some());
    for &c in f.crop.iter().flatten() {
        w.ue(c);
    }
    w.bit(f.vui.is_some());
    if let Some(v) = &f.vui {
        w.bit(true); // aspect_ratio_info_present_flag
        if v.extended_sar {
            w.u(8, 255);
            w.u(16, 4);
            w.u(16, 3);
        } else {
            w.u(8, 1);
        }
        w.bit(true); // overscan_info_present_flag
        w.bit(false);
        w.bit(true); // video_signal_type_present_flag
        w.u(3, 5);
        w.bit(false);
        w.bit(v.colour_description);
        if v.colour_description {
            w.u(24, 0x01_01_01);
        }
        w.bit(v.chroma_loc);
        if v.chroma_loc {
            w.ue(1);
            w.ue(1);
        }
        w.bit(v.timing.is_some());
        if let Some((units, scale)) = v.timing {
            w.u(32, units.into());
            w.u(32, scale.into());
            w.bit(true); // fixed_frame_rate_flag
        }
        w.bit(false); // nal_hrd_parameters_present_flag
        w.bit(false); // vcl_hrd_parameters_present_flag
        w.bit(false); // pic_struct_present_flag
        w.bit(false); // bitstream_restriction_flag
    }
    w.into_sps_nal()
}
