"""The marker-aware video jitter buffer (web/jitter.py) on real VP8 packets of real frames.

aiortc's own buffer holds every frame until the next frame's first packet arrives; ours hands it
on at its marked last packet, and the decoded picture is the frame that was sent.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

pytest.importorskip("aiortc")

from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload  # noqa: E402
from aiortc.jitterbuffer import JitterBuffer  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402

from backdrop.web import jitter  # noqa: E402
from conftest import shared_path  # noqa: E402


def vp8_packets(n: int = 3) -> tuple[list[np.ndarray], list[list[RtpPacket]]]:
    """``n`` real 640x360 frames and, for each, its RTP packets (the last one marked)."""
    encoder, seq, images, frames = Vp8Encoder(), 1000, [], []
    with av.open(str(shared_path("clips", "outdoor-seated-640x360.mp4"))) as c:
        for i, vf in enumerate(c.decode(video=0)):
            if i == n:
                break
            vf = vf.reformat(format="yuv420p")
            vf.pts, vf.time_base = i * 3000, Fraction(1, 90000)
            images.append(vf.to_ndarray(format="rgb24"))
            payloads, timestamp = encoder.encode(vf, force_keyframe=i == 0)
            packets = []
            for k, payload in enumerate(payloads):
                p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=timestamp,
                              marker=int(k == len(payloads) - 1), payload=payload)
                p._data = vp8_depayload(payload)
                packets.append(p)
                seq += 1
            frames.append(packets)
    return images, frames


def test_a_frame_leaves_at_its_marked_packet_and_decodes_to_what_was_sent():
    images, frames = vp8_packets(3)
    assert all(len(f) > 1 for f in frames[:1])  # a 640x360 key frame spans several packets
    ours = jitter._marker_buffer()(capacity=512, is_video=True)
    theirs = JitterBuffer(capacity=512, is_video=True)
    decoder = Vp8Decoder()
    for i, packets in enumerate(frames):
        for k, packet in enumerate(packets):
            _, got = ours.add(packet)
            _, late = theirs.add(packet)
            last = k == len(packets) - 1
            assert (got is not None) == last  # ours: exactly at the marked packet
            # aiortc's: the previous frame, only when this frame's first packet arrives
            assert (late is not None) == (i > 0 and k == 0)
            if got is not None:
                assert got.timestamp == packet.timestamp
                picture = decoder.decode(got)[0].to_ndarray(format="rgb24")
                err = np.mean((picture.astype(np.float32) - images[i]) ** 2)
                assert 10 * np.log10(255 ** 2 / err) > 30  # the frame that was sent


def test_a_gap_or_a_lost_marker_waits_as_before():
    _, frames = vp8_packets(2)
    first, second = frames
    buf = jitter._marker_buffer()(capacity=512, is_video=True)
    for packet in first[:-2] + first[-1:]:  # one packet of the first frame lost
        assert buf.add(packet)[1] is None  # marked, but not whole: not handed on
    buf = jitter._marker_buffer()(capacity=512, is_video=True)
    unmarked = first[-1]
    unmarked.marker = 0  # the marked packet lost its mark: the next frame's start decides, as in aiortc
    results = [buf.add(p)[1] for p in first]
    assert results == [None] * len(first)
    assert buf.add(second[0])[1] is not None


def test_install_puts_it_into_the_receiver():
    import aiortc.rtcrtpreceiver as receiver

    assert jitter.install() and jitter.install()  # once, and again is a no-op
    assert receiver.JitterBuffer.__name__ == "MarkerJitterBuffer"
    assert issubclass(receiver.JitterBuffer, JitterBuffer)
