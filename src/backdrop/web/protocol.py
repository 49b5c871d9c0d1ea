"""What goes over HTTP: the refusal type, the JSON reply and the check of an offer's body.

Hostile input is expected: a malformed ``POST /offer`` or ``/view`` becomes a :class:`ClientError`
(a 4xx with a one-line message), never a 500. Kept apart from the app so it is testable without
aiohttp or aiortc.
"""

from __future__ import annotations

import json
from typing import Any

from .config import MAX_OFFER_BYTES


class ClientError(Exception):
    """A request or message from a client that is refused; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def json_response(obj: Any, status: int = 200):
    from aiohttp import web

    return web.json_response(obj, status=status, headers={"Cache-Control": "no-store"})


def same_secret(expected: str, given: Any) -> bool:
    """Whether ``given`` is the secret (token) ``expected``: a constant-time compare of at most
    256 bytes, False for anything not a non-empty string of text (a lone surrogate, which JSON's
    ``\\ud800`` or a non-UTF-8 header byte gives, cannot be encoded: it is no secret of ours)."""
    import secrets

    if not isinstance(given, str) or not given:
        return False
    try:
        raw = given.encode()[:256]
    except UnicodeEncodeError:
        return False
    return secrets.compare_digest(expected.encode(), raw)


def check_secret(value: Any, what: str = "token") -> Any:
    """``value`` unchanged, or a 400 when it is a string that is not text (lone surrogates: from a
    JSON ``\\udc80`` or header bytes that are not UTF-8), before anything compares or logs it."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ClientError(f"the {what} is not valid UTF-8 text") from None
    return value


def one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


def check_offer_body(raw: bytes) -> tuple[str, str]:
    """Validate the body of ``POST /offer`` or ``/view``: JSON ``{sdp, type: "offer"}``."""
    if not raw:
        raise ClientError('empty body: POST JSON {"sdp": ..., "type": "offer"}')
    if len(raw) > MAX_OFFER_BYTES:
        raise ClientError(f"offer too large ({len(raw)} bytes, limit {MAX_OFFER_BYTES})", 413)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nesting
        raise ClientError('body is not JSON: POST {"sdp": ..., "type": "offer"}') from None
    if not isinstance(body, dict):
        raise ClientError('body must be a JSON object {"sdp": ..., "type": "offer"}')
    sdp, sdp_type = body.get("sdp"), body.get("type")
    if sdp_type != "offer":
        raise ClientError(f'"type" must be "offer", got {str(sdp_type)[:20]!r}')
    if not isinstance(sdp, str) or not sdp.strip():
        raise ClientError('"sdp" must be a non-empty string')
    if not sdp.lstrip().startswith("v=0"):
        raise ClientError('"sdp" is not a session description (it must start with v=0)')
    if "\x00" in sdp:
        raise ClientError('"sdp" contains a NUL byte')
    check_secret(sdp, '"sdp"')
    lines = sdp.replace("\r\n", "\n").split("\n")
    media = [ln.split()[0][2:] for ln in lines if ln.startswith("m=") and ln.split()]
    if media.count("video") > 1 or media.count("audio") > 1 or media.count("application") > 1 or len(media) > 3:
        raise ClientError("the offer may carry one video track, one audio track and one data channel")
    return sdp, sdp_type


def check_sdp(sdp: str, *, send_video: bool) -> None:
    """Parse the SDP (cheap) before anything expensive is built for it.

    ``send_video``: a publisher's offer must send video (sendrecv/sendonly); a viewer's must be
    able to receive it (recvonly/sendrecv). Raises :class:`ClientError` (400) otherwise.
    """
    from aiortc.rtcdtlstransport import X509_DIGEST_ALGORITHMS
    from aiortc.sdp import SessionDescription

    try:
        desc = SessionDescription.parse(sdp)
    except Exception as exc:  # ValueError, KeyError, IndexError... on bad SDP
        raise ClientError(f"cannot use this offer: {one_line(exc, 160)}") from None
    for m in desc.media:
        # aiortc asserts this only once connecting, in a task: an AssertionError traceback in the log
        prints = m.dtls.fingerprints if m.dtls is not None else []
        if not any(f.algorithm.lower() in X509_DIGEST_ALGORITHMS for f in prints):
            raise ClientError("the offer has no usable DTLS fingerprint and setup role (a=fingerprint:sha-256 "
                              "..., a=setup:...) for its media")
    video = [m for m in desc.media if m.kind == "video"]
    want = ("sendrecv", "sendonly") if send_video else ("sendrecv", "recvonly")
    if not any((m.direction or "sendrecv") in want for m in video):
        if send_video:
            raise ClientError("the offer carries no video track to process (is the camera on?)")
        raise ClientError("the offer has no video to receive (add a recvonly video transceiver)")
