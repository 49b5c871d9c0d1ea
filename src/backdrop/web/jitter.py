"""A video jitter buffer that hands a frame on when its last packet arrives, not one frame later.

aiortc's ``JitterBuffer`` (aiortc 1.x, ``jitterbuffer.py``) knows a video frame is complete only
when the first packet of the *next* frame arrives (a new RTP timestamp): every received frame waits
one frame interval, 33 ms at 30 fps, before it is decoded. Senders mark the last packet of each
frame (the RTP marker bit, RFC 3550 5.1; RFC 7741 4.1 for VP8), and browsers' receivers use it. This
subclass does too: when the packets from the buffer's start to a marked packet are all there and
share one timestamp, that frame leaves at once. Nothing else changes: a lost marked packet or a gap
falls back to aiortc's own rule, so a frame is never handed on with a packet missing.

:func:`install` puts it into aiortc's receiver (``aiortc.rtcrtpreceiver.JitterBuffer``, the one
name the receiver builds its video buffer from) for this process; the server and the Python
client call it before making a peer connection. Measured round trip in docs/live.md.
"""

from __future__ import annotations

from typing import Any

_installed = False


def _marker_buffer() -> type:
    from aiortc.jitterbuffer import JitterBuffer, JitterFrame

    class MarkerJitterBuffer(JitterBuffer):
        """aiortc's buffer, and a video frame also leaves as soon as its marked packet is in."""

        def _remove_frame(self, sequence_number: int) -> Any:
            frame = super()._remove_frame(sequence_number)
            if frame is not None or not self._is_video or self._origin is None:
                return frame
            packets, timestamp = [], None
            for count in range(self.capacity):
                packet = self._packets[(self._origin + count) % self.capacity]
                if packet is None or (timestamp is not None and packet.timestamp != timestamp):
                    return None  # a gap, or no marked packet before the next frame: the usual rule
                timestamp = packet.timestamp
                packets.append(packet)
                if packet.marker:
                    self.remove(count + 1)
                    return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)
            return None

    return MarkerJitterBuffer


def install() -> bool:
    """Make aiortc's receivers use :class:`MarkerJitterBuffer` (once per process). Returns False,
    leaving aiortc as it is, when its receiver does not have the expected buffer."""
    global _installed
    if _installed:
        return True
    import aiortc.rtcrtpreceiver as receiver
    from aiortc.jitterbuffer import JitterBuffer

    if getattr(receiver, "JitterBuffer", None) is not JitterBuffer or not hasattr(JitterBuffer, "_remove_frame"):
        return False
    receiver.JitterBuffer = _marker_buffer()
    _installed = True
    return True


__all__ = ["install"]
