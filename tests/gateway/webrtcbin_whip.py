#!/usr/bin/python3
"""A WHIP publisher made of GStreamer's own WebRTC stack, for tests/gateway/whip_interop.rs.

webrtcbin (gst-plugins-bad) writes the SDP offer and runs ICE (libnice), DTLS-SRTP and RTP;
x264enc + rtph264pay and opusenc + rtpopuspay make the media from videotestsrc/audiotestsrc.
This file only carries the offer and answer over HTTP (RFC 9725 §4.2: POST the offer, 201 with
the answer and a Location, DELETE at the end), non-trickle: the POST waits for ICE gathering.

Usage: webrtcbin_whip.py ENDPOINT_URL SECONDS [--ip ADDR]...
  --ip ADDR   gather ICE candidates on ADDR only (repeatable; default 127.0.0.1). libnice
              leaves loopback out of its automatic gathering, so the tests name it.
  --frames N  send exactly N video frames (default SECONDS x 30), then keep audio going until
              SECONDS have passed. Media starts when the connection is up.

Prints one JSON object on stdout at the end: the offer and answer SDP, the Location, the
states the connection went through and the number of video frames sent. Exits 1 with a
message on stderr when the publish fails (HTTP error, ICE/DTLS failure, pipeline error).
"""

import json
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

FPS = 30
VIDEO_PT = 102
AUDIO_PT = 111


def fail(message):
    print(f"webrtcbin_whip: {message}", file=sys.stderr, flush=True)
    # No interpreter teardown (see Publisher.ice): exit as is.
    os._exit(1)


def parse_args(argv):
    if len(argv) < 3:
        fail(__doc__)
    url, seconds = argv[1], float(argv[2])
    ips, frames = [], None
    rest = argv[3:]
    while rest:
        flag, value, rest = rest[0], rest[1] if len(rest) > 1 else None, rest[2:]
        if value is None:
            fail(f"{flag} needs a value")
        if flag == "--ip":
            ips.append(value)
        elif flag == "--frames":
            frames = int(value)
        else:
            fail(f"unknown option {flag}")
    return url, seconds, ips or ["127.0.0.1"], frames or int(seconds * FPS)


def pipeline_text():
    video = (
        "videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width=320,height=240,framerate={FPS}/1 ! videoconvert ! queue "
        # Baseline (no B-frames), a keyframe every second, and one at once on a PLI
        # (webrtcbin turns RTCP PLI into a force-key-unit event upstream).
        "! x264enc name=h264 tune=zerolatency speed-preset=ultrafast bitrate=600 key-int-max=30 "
        "! video/x-h264,profile=constrained-baseline "
        f"! rtph264pay pt={VIDEO_PT} config-interval=-1 aggregate-mode=zero-latency "
        f"! application/x-rtp,media=video,encoding-name=H264,payload={VIDEO_PT} ! queue ! send."
    )
    audio = (
        "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample "
        "! queue ! opusenc "
        f"! rtpopuspay pt={AUDIO_PT} "
        f"! application/x-rtp,media=audio,encoding-name=OPUS,payload={AUDIO_PT} ! queue ! send."
    )
    return f"webrtcbin name=send bundle-policy=max-bundle {video} {audio}"


class Publisher:
    def __init__(self, url, seconds, ips, frames):
        self.url, self.seconds, self.frames = url, seconds, frames
        self.loop = GLib.MainLoop()
        self.pipe = Gst.parse_launch(pipeline_text())
        self.webrtc = self.pipe.get_by_name("send")
        # Kept for the life of the process: in GStreamer 1.22 the `ice-agent` getter hands out
        # a reference it does not own, so letting Python drop it frees webrtcbin's agent.
        self.ice = self.webrtc.get_property("ice-agent")
        for ip in ips:
            self.ice.emit("add-local-ip-address", ip)
        self.location = None
        self.offer = None
        self.answer = None
        self.states = []
        self.error = None
        self.video_frames = 0
        self.posted = False
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.webrtc.connect("notify::connection-state", self.on_connection_state)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)
        # The video that goes on to the payloader: nothing until the connection is up (webrtcbin
        # would drop it), then exactly `frames` encoded frames from the first keyframe on.
        self.encoder = self.pipe.get_by_name("h264")
        self.connected = False
        self.started = False
        self.encoder.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.gate_frame)

    def gate_frame(self, _pad, info):
        if not self.connected or self.video_frames >= self.frames:
            return Gst.PadProbeReturn.DROP
        if not self.started:
            if info.get_buffer().has_flags(Gst.BufferFlags.DELTA_UNIT):
                return Gst.PadProbeReturn.DROP
            self.started = True
        self.video_frames += 1
        return Gst.PadProbeReturn.OK

    def start_media(self):
        # No keyframe is forced here: castgate asks for one (PLI) as the stream starts, and a
        # forced one on top would make two in a row.
        self.connected = True
        GLib.timeout_add(int(self.seconds * 1000), self.stop)
        return False

    def stop(self, error=None):
        if error and not self.error:
            self.error = error
        self.loop.quit()
        return False

    def on_message(self, _bus, message):
        if message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            self.stop(f"pipeline error: {err.message} ({debug})")

    def on_negotiation_needed(self, element):
        # A WHIP publisher only sends.
        for i in range(64):
            transceiver = element.emit("get-transceiver", i)
            if transceiver is None:
                break
            transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        promise = Gst.Promise.new_with_change_func(self.on_offer_created, element, None)
        element.emit("create-offer", None, promise)

    def on_offer_created(self, promise, element, _data):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        element.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, element, _pspec):
        state = element.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not self.posted:
            self.posted = True
            # HTTP off the main loop: webrtcbin's signals must not wait on the network.
            threading.Thread(target=self.post_offer, daemon=True).start()

    def post_offer(self):
        self.offer = self.webrtc.get_property("local-description").sdp.as_text()
        request = urllib.request.Request(
            self.url,
            data=self.offer.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
                location = response.headers.get("Location")
                body = response.read().decode()
        except urllib.error.HTTPError as e:
            GLib.idle_add(self.stop, f"POST answered {e.code}: {e.read().decode()[:400]}")
            return
        except OSError as e:
            GLib.idle_add(self.stop, f"POST failed: {e}")
            return
        if status != 201 or not location:
            GLib.idle_add(self.stop, f"POST answered {status} (Location {location!r})")
            return
        self.location = urllib.parse.urljoin(self.url, location)
        self.answer = body
        GLib.idle_add(self.apply_answer)

    def apply_answer(self):
        result, sdp = GstSdp.SDPMessage.new_from_text(self.answer)
        if result != GstSdp.SDPResult.OK:
            return self.stop("the answer does not parse as SDP")
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        return False

    def on_connection_state(self, element, _pspec):
        state = element.get_property("connection-state")
        name = state.value_nick
        self.states.append(name)
        print(f"webrtcbin_whip: connection {name}", file=sys.stderr, flush=True)
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and "connected" not in self.states[:-1]:
            GLib.idle_add(self.start_media)
        if state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            GLib.idle_add(self.stop, "ICE/DTLS connection failed")

    def delete(self):
        if not self.location:
            return
        request = urllib.request.Request(self.location, method="DELETE")
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except (urllib.error.HTTPError, OSError) as e:
            self.error = self.error or f"DELETE {self.location} failed: {e}"

    def run(self):
        self.pipe.set_state(Gst.State.PLAYING)
        # Bounded: gathering, the POST and the whole publish, with room to spare.
        GLib.timeout_add(int((self.seconds + 30) * 1000), self.stop, "publish did not finish in time")
        self.loop.run()
        self.delete()
        self.pipe.set_state(Gst.State.NULL)
        if not self.error and "connected" not in self.states:
            self.error = f"never connected (states: {self.states})"
        print(
            json.dumps(
                {
                    "location": self.location,
                    "offer": self.offer,
                    "answer": self.answer,
                    "states": self.states,
                    "video_frames": self.video_frames,
                    "error": self.error,
                }
            ),
            flush=True,
        )
        if self.error:
            fail(self.error)


def main():
    Gst.init(None)
    Publisher(*parse_args(sys.argv)).run()
    os._exit(0)


if __name__ == "__main__":
    main()
