//! AMF0 (Adobe "Action Message Format -- AMF 0", 2007) for FLV script tags: a borrowed encoder
//! for the four types `onMetaData` needs (number, boolean, string, ECMA array) and an owned
//! decoder that also reads objects, strict arrays, dates and null so tests can read other
//! muxers' metadata.

use super::FlvError;

/// Type markers (AMF0 §2.1).
pub mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0a;
    pub const DATE: u8 = 0x0b;
    pub const LONG_STRING: u8 = 0x0c;
}

/// The empty property name plus object-end marker that closes objects and ECMA arrays.
const OBJECT_END: [u8; 3] = [0x00, 0x00, marker::OBJECT_END];

/// A value to encode. Borrowed and `Copy` so a whole script tag can be described on the stack
/// and measured before its single allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amf0<'a> {
    Number(f64),
    Boolean(bool),
    String(&'a str),
    EcmaArray(&'a [(&'a str, Amf0<'a>)]),
}

impl Amf0<'_> {
    /// Bytes [`Self::write`] appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            Amf0::Number(_) => 1 + 8,
            Amf0::Boolean(_) => 1 + 1,
            Amf0::String(s) if s.len() <= usize::from(u16::MAX) => 1 + 2 + s.len(),
            Amf0::String(s) => 1 + 4 + long_len(s),
            Amf0::EcmaArray(entries) => {
                let body: usize = entries
                    .iter()
                    .map(|(k, v)| 2 + key_len(k) + v.encoded_len())
                    .sum();
                1 + 4 + body + OBJECT_END.len()
            }
        }
    }

    /// Appends the marker and value to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match *self {
            Amf0::Number(n) => {
                out.push(marker::NUMBER);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Amf0::Boolean(b) => {
                out.push(marker::BOOLEAN);
                out.push(u8::from(b));
            }
            Amf0::String(s) if s.len() <= usize::from(u16::MAX) => {
                out.push(marker::STRING);
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Amf0::String(s) => {
                let len = long_len(s);
                out.push(marker::LONG_STRING);
                out.extend_from_slice(&(len as u32).to_be_bytes());
                out.extend_from_slice(&s.as_bytes()[..len]);
            }
            Amf0::EcmaArray(entries) => {
                out.push(marker::ECMA_ARRAY);
                // The count is only a hint to readers (the end marker is authoritative).
                let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&count.to_be_bytes());
                for (key, value) in entries {
                    let len = key_len(key);
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                    out.extend_from_slice(&key.as_bytes()[..len]);
                    value.write(out);
                }
                out.extend_from_slice(&OBJECT_END);
            }
        }
    }
}

/// Property names carry a 16-bit length; longer names are cut (castgate's are all short).
fn key_len(key: &str) -> usize {
    key.len().min(usize::from(u16::MAX))
}

/// Long strings carry a 32-bit length.
fn long_len(s: &str) -> usize {
    s.len().min(u32::MAX as usize)
}

/// A decoded AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch; the time-zone field is reserved and dropped.
    Date(f64),
}

impl Amf0Value {
    /// The value of `key` in an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(props) | Amf0Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// Nesting deeper than this is rejected rather than recursed into.
const MAX_DEPTH: usize = 32;

/// Decodes one value from the start of `buf`; returns it and the bytes consumed.
pub fn decode(buf: &[u8]) -> Result<(Amf0Value, usize), FlvError> {
    let mut r = Reader { buf, pos: 0 };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

/// A script tag body: the handler name string (e.g. `onMetaData`) then its argument value.
pub fn decode_script(body: &[u8]) -> Result<(String, Amf0Value), FlvError> {
    let (name, used) = decode(body)?;
    let Amf0Value::String(name) = name else {
        return Err(FlvError::Amf0("script tag does not start with a string"));
    };
    let (value, _) = decode(&body[used..])?;
    Ok((name, value))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FlvError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(FlvError::Amf0("value runs past the end"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, FlvError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FlvError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, FlvError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f64(&mut self) -> Result<f64, FlvError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }
    fn utf8(&mut self, len: usize) -> Result<String, FlvError> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| FlvError::Amf0("string is not UTF-8"))
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, FlvError> {
        if depth > MAX_DEPTH {
            return Err(FlvError::Amf0("values nested too deeply"));
        }
        Ok(match self.u8()? {
            marker::NUMBER => Amf0Value::Number(self.f64()?),
            marker::BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            marker::STRING => {
                let len = self.u16()?;
                Amf0Value::String(self.utf8(usize::from(len))?)
            }
            marker::LONG_STRING => {
                let len = self.u32()?;
                Amf0Value::String(self.utf8(len as usize)?)
            }
            marker::OBJECT => Amf0Value::Object(self.properties(depth)?),
            marker::ECMA_ARRAY => {
                let _count_hint = self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth)?)
            }
            marker::STRICT_ARRAY => {
                let count = self.u32()?;
                // Every element takes at least one byte: a count beyond the remaining bytes is
                // corrupt, and checking first keeps a hostile count from reserving memory.
                if count as usize > self.buf.len() - self.pos {
                    return Err(FlvError::Amf0("strict array count exceeds data"));
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            marker::DATE => {
                let millis = self.f64()?;
                let _time_zone = self.u16()?;
                Amf0Value::Date(millis)
            }
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            _ => return Err(FlvError::Amf0("unsupported type marker")),
        })
    }

    /// Name/value pairs up to the empty-name + object-end marker.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, FlvError> {
        let mut props = Vec::new();
        loop {
            let len = self.u16()?;
            if len == 0 && self.buf.get(self.pos) == Some(&marker::OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let key = self.utf8(usize::from(len))?;
            let value = self.value(depth + 1)?;
            props.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_encode_per_amf0_section_2() {
        let mut out = Vec::new();
        Amf0::Number(1.5).write(&mut out);
        Amf0::Boolean(true).write(&mut out);
        Amf0::String("ab").write(&mut out);
        assert_eq!(
            out,
            [
                0x00, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, // 1.5
                0x01, 0x01, // true
                0x02, 0x00, 0x02, b'a', b'b', // "ab"
            ]
        );
    }

    #[test]
    fn ecma_array_has_count_and_end_marker() {
        let entries = [("w", Amf0::Number(2.0)), ("s", Amf0::Boolean(false))];
        let v = Amf0::EcmaArray(&entries);
        let mut out = Vec::new();
        v.write(&mut out);
        assert_eq!(
            out,
            [
                0x08, 0, 0, 0, 2, // marker, count
                0, 1, b'w', 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, // "w": 2.0
                0, 1, b's', 0x01, 0x00, // "s": false
                0, 0, 0x09, // end
            ]
        );
        assert_eq!(v.encoded_len(), out.len());
    }

    #[test]
    fn strings_longer_than_64k_become_long_strings() {
        let s = "x".repeat(70_000);
        let mut out = Vec::new();
        Amf0::String(&s).write(&mut out);
        assert_eq!(&out[..5], &[0x0c, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(out.len(), Amf0::String(&s).encoded_len());
        assert_eq!(decode(&out).unwrap().0, Amf0Value::String(s));
    }

    #[test]
    fn decoder_reads_objects_arrays_dates_and_null() {
        let buf = [
            0x03, // object
            0, 1, b'a', 0x0a, 0, 0, 0, 2, 0x05, 0x06, // "a": [null, undefined]
            0, 1, b'd', 0x0b, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, // "d": date 2.0
            0, 0, 0x09,
        ];
        let (v, used) = decode(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(
            v.get("a"),
            Some(&Amf0Value::StrictArray(vec![
                Amf0Value::Null,
                Amf0Value::Undefined
            ]))
        );
        assert_eq!(v.get("d"), Some(&Amf0Value::Date(2.0)));
    }

    #[test]
    fn decoder_rejects_truncation_bad_markers_and_deep_nesting() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0x00, 0x40]).is_err());
        assert!(decode(&[0x02, 0x00, 0x05, b'a']).is_err());
        assert!(decode(&[0x11]).is_err());
        assert!(decode(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x05]).is_err());
        assert!(decode(&[0x02, 0x00, 0x01, 0xff]).is_err()); // not UTF-8
        let deep: Vec<u8> = std::iter::repeat_n([0x03, 0x00, 0x01, b'k'], 100)
            .flatten()
            .collect();
        assert_eq!(
            decode(&deep),
            Err(FlvError::Amf0("values nested too deeply"))
        );
    }
}
