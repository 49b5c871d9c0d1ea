"""Backdrop: real-time virtual backgrounds.

Conventions everywhere in the API: frames are RGB ``uint8`` arrays of shape HxWx3; mattes are
``float32`` arrays of shape HxW with values in [0, 1] (1 = person).

    from backdrop import Pipeline, process_video
    p = Pipeline(background="beach.jpg")
    out = p(frame)                       # RGB uint8 HxWx3 -> RGB uint8 HxWx3
    process_video("in.mp4", "out.mp4", background="blur:15")
    big = upscale(frame)                 # RGB uint8 HxWx3 -> RGB uint8 2Hx2Wx3 (our sr-x2 network)
"""

__version__ = "0.1.0"

from .errors import BackdropError  # noqa: E402
from .models import load_model  # noqa: E402
from .engine import Pipeline, PipelineOptions  # noqa: E402
from .process import process_image, process_video  # noqa: E402
from .superres import upscale  # noqa: E402

__all__ = ["BackdropError", "Pipeline", "PipelineOptions", "load_model", "process_image", "process_video",
           "upscale", "__version__"]
