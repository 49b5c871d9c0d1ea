"""A live-output sink that shows frames in a desktop window: :class:`PreviewSink` (OpenCV HighGUI).

Exists on its own because it is the one sink that needs a display and a window-capable OpenCV,
and says how to get them instead of failing obscurely.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import cv2
import numpy as np

from ..errors import OutputError


class PreviewSink:
    """Show the output in a window (OpenCV HighGUI) and collect the keys pressed in it.

    The pip wheel ``opencv-python-headless`` has no window support; then this says how to get it
    instead of failing obscurely.
    """

    def __init__(self, title: str = "backdrop", overlay: bool = True):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise OutputError("--preview needs a display (DISPLAY is not set)")
        self.title = title
        self.overlay = overlay
        self.text = ""
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise OutputError("--preview needs OpenCV with window support: pip uninstall opencv-python-headless "
                              "&& pip install opencv-python") from None
        self.keys: list[str] = []
        self.closed_by_user = False

    def write(self, image: np.ndarray, frame: Any = None) -> None:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self.overlay and self.text:
            cv2.putText(bgr, self.text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(bgr, self.text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow(self.title, bgr)

    def poll(self) -> list[str]:
        """Keys pressed since the last call; ``"\\x1b"`` also when the window was closed."""
        key = cv2.waitKey(1)
        if key >= 0:
            self.keys.append(chr(key & 0xFF))
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                self.closed_by_user = True
                self.keys.append("\x1b")
        except cv2.error:
            pass
        keys, self.keys = self.keys, []
        return keys

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass

    def describe(self) -> str:
        return "preview window"
