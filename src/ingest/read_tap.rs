//! A receive-only step in webrtc-rs's interceptor chain, for castgate's own taps (Sender
//! Reports, the simulcast layer filter): the step sees each inbound packet and queues what goes
//! on; outbound packets pass untouched. Holding the queues and the interceptor plumbing here
//! keeps each tap to its one decision.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// What a tap does with one inbound packet: push onto `out` whatever should continue up the
/// chain (the packet, changed or not, and anything it adds), or nothing to drop it.
pub trait ReadStep: Send + Sync {
    fn read(&mut self, packet: TaggedPacket, out: &mut VecDeque<TaggedPacket>);
}

/// The interceptor around a [`ReadStep`].
pub struct ReadTap<S> {
    step: S,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl<S: ReadStep> ReadTap<S> {
    pub fn new(step: S) -> ReadTap<S> {
        ReadTap {
            step,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }
}

impl<S: ReadStep> Protocol<TaggedPacket, TaggedPacket, ()> for ReadTap<S> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.step.read(msg, &mut self.read_queue);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write_queue.pop_front()
    }
}

impl<S: ReadStep> Interceptor for ReadTap<S> {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
