"""The browser over WebRTC: ``backdrop serve`` (aiortc + aiohttp) and its page in ``static/``.

Import :mod:`backdrop.web.server` for :class:`~backdrop.web.server.BackdropServer`,
:class:`~backdrop.web.server.ServerConfig` and :class:`~backdrop.web.server.ServerThread`; this
package itself imports nothing heavy, so ``backdrop`` works without the ``[web]`` extra.
"""
