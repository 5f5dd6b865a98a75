//! The ISO BMFF box-writing helper: a box is a 32-bit size, a four-character type and a body
//! (ISO/IEC 14496-12 §4.2). The size is written as a placeholder and patched once the body is done.

use bytes::{BufMut, BytesMut};

/// Size of a plain box header (32-bit size + type).
pub(super) const BOX_HEADER: usize = 8;
/// Size of a full box header (plain header + version + 24-bit flags).
pub(super) const FULL_BOX_HEADER: usize = 12;

/// Writes one box whose body is produced by `body`, then patches its size.
///
/// Boxes this crate writes are far below 4 GiB (the only big one, `mdat`, is written with
/// [`write_mdat_header`]); a body that somehow grew past it gets a saturated size rather than
/// a panic.
pub(super) fn write_box(buf: &mut BytesMut, kind: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_slice(kind);
    body(buf);
    let size = u32::try_from(buf.len() - start).unwrap_or(u32::MAX);
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes one full box (§4.2: a box with an 8-bit version and 24-bit flags before the body).
pub(super) fn write_full_box(
    buf: &mut BytesMut,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    write_box(buf, kind, |buf| {
        buf.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(buf);
    });
}

/// Length of the `mdat` header for a payload of `payload_len` bytes: the 64-bit `largesize`
/// form (§4.2, size = 1) is needed only past 4 GiB.
pub(super) fn mdat_header_len(payload_len: usize) -> usize {
    if (payload_len as u64).saturating_add(BOX_HEADER as u64) > u64::from(u32::MAX) {
        BOX_HEADER + 8
    } else {
        BOX_HEADER
    }
}

/// Writes the header of an `mdat` whose payload (`payload_len` bytes) the caller appends next.
pub(super) fn write_mdat_header(buf: &mut BytesMut, payload_len: usize) {
    let header = mdat_header_len(payload_len);
    let total = (payload_len as u64).saturating_add(header as u64);
    if header == BOX_HEADER {
        buf.put_u32(total as u32);
        buf.put_slice(b"mdat");
    } else {
        buf.put_u32(1);
        buf.put_slice(b"mdat");
        buf.put_u64(total);
    }
}

/// The identity transformation matrix of `mvhd` and `tkhd` (§8.2.2.3, 16.16 and 2.30 fixed point).
pub(super) fn write_unity_matrix(buf: &mut BytesMut) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        buf.put_u32(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_get_their_sizes_patched() {
        let mut buf = BytesMut::new();
        write_box(&mut buf, b"moov", |b| {
            write_full_box(b, b"mvhd", 1, 0x0000_0203, |b| b.put_u8(0xaa));
            write_box(b, b"free", |_| {});
        });
        let expected: &[u8] = &[
            0, 0, 0, 29, b'm', b'o', b'o', b'v', // outer: 8 + 13 + 8
            0, 0, 0, 13, b'm', b'v', b'h', b'd', 1, 0, 2, 3, 0xaa, // full box v1 flags 0x203
            0, 0, 0, 8, b'f', b'r', b'e', b'e',
        ];
        assert_eq!(&buf[..], expected);
    }

    #[test]
    fn full_box_flags_are_masked_to_24_bits() {
        let mut buf = BytesMut::new();
        write_full_box(&mut buf, b"tfhd", 0, 0xff02_0000, |_| {});
        assert_eq!(&buf[8..12], &[0, 2, 0, 0]);
    }

    #[test]
    fn mdat_uses_largesize_only_past_4_gib() {
        assert_eq!(mdat_header_len(100), 8);
        assert_eq!(mdat_header_len(u32::MAX as usize - 8), 8);
        assert_eq!(mdat_header_len(u32::MAX as usize - 7), 16);
        let mut buf = BytesMut::new();
        write_mdat_header(&mut buf, 5);
        assert_eq!(&buf[..], &[0, 0, 0, 13, b'm', b'd', b'a', b't']);
        let mut big = BytesMut::new();
        write_mdat_header(&mut big, 1 << 32);
        assert_eq!(&big[..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
        assert_eq!(&big[8..], &((1u64 << 32) + 16).to_be_bytes());
    }
}
