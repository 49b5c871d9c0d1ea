"""Loopback-only ICE: a patch of aioice, reference-counted so several servers can share it.

aiortc gathers candidates on every network interface but skips loopback; a server bound to
127.0.0.1 wants the opposite. This is the one place that touches aioice's internals.
"""

from __future__ import annotations

import contextlib
import threading

_ice_patch_lock = threading.Lock()
_ice_patch_users = 0
_ice_original = None


@contextlib.contextmanager
def loopback_ice():
    """Make aiortc gather ICE candidates on 127.0.0.1 only (it skips loopback by default).

    A server bound to 127.0.0.1 serves only this machine; offering candidates on the network
    interfaces too would expose the media ports to the network for no benefit.
    """
    import aioice.ice

    global _ice_patch_users, _ice_original
    with _ice_patch_lock:
        if _ice_patch_users == 0:
            _ice_original = aioice.ice.get_host_addresses
            aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []
        _ice_patch_users += 1
    try:
        yield
    finally:
        with _ice_patch_lock:
            _ice_patch_users -= 1
            if _ice_patch_users == 0:
                aioice.ice.get_host_addresses = _ice_original
