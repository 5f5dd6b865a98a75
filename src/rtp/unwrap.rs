//! Extending RTP's wrapping 16-bit sequence numbers and 32-bit timestamps to 64-bit values.
//!
//! Both fields start at a random value (RFC 3550 §5.1) and wrap. Each new value is placed at
//! the shortest distance from the previous one (forward or backward, within half the range),
//! so a slightly late packet from before a wrap maps to the earlier cycle (a negative step)
//! rather than to almost one full cycle later.

/// Extends 16-bit RTP sequence numbers. The first value maps to itself.
#[derive(Clone, Debug, Default)]
pub struct SeqUnwrapper {
    last: Option<i64>,
}

impl SeqUnwrapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the extended value of `seq` and makes it the reference for the next call.
    pub fn unwrap(&mut self, seq: u16) -> i64 {
        let value = match self.last {
            None => i64::from(seq),
            // Reinterpreting the wrapped difference as signed picks the nearer cycle.
            Some(last) => last.saturating_add(i64::from(seq.wrapping_sub(last as u16) as i16)),
        };
        self.last = Some(value);
        value
    }

    /// The last extended value returned, if any.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}

/// Extends 32-bit RTP timestamps. The first value maps to itself (`0..=u32::MAX`).
#[derive(Clone, Debug, Default)]
pub struct TimestampUnwrapper {
    last: Option<i64>,
}

impl TimestampUnwrapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the extended value of `ts` and makes it the reference for the next call.
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let value = match self.last {
            None => i64::from(ts),
            Some(last) => last.saturating_add(i64::from(ts.wrapping_sub(last as u32) as i32)),
        };
        self.last = Some(value);
        value
    }

    /// The last extended value returned, if any.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_forward_through_zero() {
        let mut u = SeqUnwrapper::new();
        let got: Vec<i64> = [65533u16, 65534, 65535, 0, 1]
            .iter()
            .map(|&s| u.unwrap(s))
            .collect();
        assert_eq!(got, vec![65533, 65534, 65535, 65536, 65537]);
    }

    #[test]
    fn late_sequence_from_before_the_wrap_maps_to_the_earlier_cycle() {
        let mut u = SeqUnwrapper::new();
        assert_eq!(u.unwrap(65535), 65535);
        assert_eq!(u.unwrap(1), 65537);
        assert_eq!(u.unwrap(65534), 65534);
        assert_eq!(u.unwrap(2), 65538);
    }

    #[test]
    fn first_sequence_just_after_zero_then_older_goes_negative() {
        let mut u = SeqUnwrapper::new();
        assert_eq!(u.unwrap(3), 3);
        assert_eq!(u.unwrap(65534), -2);
        assert_eq!(u.unwrap(4), 4);
    }

    #[test]
    fn timestamp_wraps_forward_and_backward() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap(0xFFFF_FF00), 0xFFFF_FF00);
        assert_eq!(u.unwrap(0x0000_0E00), 0x1_0000_0E00);
        // A late frame from before the wrap lands in the earlier cycle.
        assert_eq!(u.unwrap(0xFFFF_FF80), 0xFFFF_FF80);
        assert_eq!(u.unwrap(0x0000_1B00), 0x1_0000_1B00);
    }

    #[test]
    fn timestamp_steps_of_almost_half_the_range_keep_their_direction() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap(0), 0);
        assert_eq!(u.unwrap(0x7FFF_FFFF), 0x7FFF_FFFF);
        assert_eq!(u.unwrap(0xFFFF_FFFE), 0xFFFF_FFFE);
        assert_eq!(u.unwrap(0x7FFF_FFFF), 0x7FFF_FFFF);
        assert_eq!(u.last(), Some(0x7FFF_FFFF));
    }
}
