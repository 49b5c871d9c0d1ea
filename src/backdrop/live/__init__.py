"""Live streams: a webcam or a browser in, composited frames out, in real time.

``scheduler`` runs capture, processing and output in separate threads joined by drop-oldest
queues, so a slow frame never turns into lasting latency. ``controls`` holds the runtime
settings (effect, background, blur, colour, model, mirror) and the ways to change them while
running: preview-window keys, a local HTTP/JSON endpoint, a watched JSON file, and the web
server's data channel.
"""

from .controls import ConfigWatcher, ControlServer, open_control_server
from .processor import LiveProcessor
from .settings import KEY_HELP, LiveSettings, apply_changes, key_changes
from .scheduler import DropOldestQueue, LiveFrame, LiveLoop, LiveStats, format_stats

__all__ = ["KEY_HELP", "ConfigWatcher", "ControlServer", "DropOldestQueue", "LiveFrame", "LiveLoop", "LiveProcessor",
           "LiveSettings", "LiveStats", "apply_changes", "format_stats", "key_changes", "open_control_server"]
