"""What a live stream shows, and the one validator every way of changing it goes through.

Changes come from preview-window keys, the local HTTP/JSON endpoint, a watched JSON file and a
WebRTC peer's data channel; all of them call :func:`apply_changes`, so a bad value gets the same
one-line error everywhere. The keys are the fixed ones below plus every stage option declared
``live=True`` (``stages/*.py``): a new live option needs no edit here. Backgrounds are parsed with
the one ``--background`` grammar (:class:`~backdrop.compose.backgrounds.BackgroundSpec`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..compose.backgrounds import BackgroundSpec, page_kinds
from ..compose.backgrounds.blur import DEFAULT_BLUR, check_strength
from ..compose.backgrounds.colour import NAMED_COLOURS, format_colour, parse_colour
from ..engine.options import LIVE_OPTIONS
from ..errors import BackdropError, OptionError
from ..models import DEFAULT_MODEL, KNOWN_MODELS

BASE_KEYS = ("effect", "background", "colour", "color", "blur", "image", "model", "mirror", "slide")
SETTING_KEYS = BASE_KEYS + tuple(LIVE_OPTIONS)
COLOUR_CYCLE = ["#00b140", "#0047bb", "#ffffff", "#000000", "#808080"]


@dataclass(frozen=True)
class LiveSettings:
    """What a live stream shows. ``background`` is any live-capable ``--background`` value;
    ``tuning`` holds the live stage options changed from the pipeline's (name, value) pairs."""

    effect: bool = True
    background: str = "blur"
    model: str = DEFAULT_MODEL
    mirror: bool = False
    tuning: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(dict(d.pop("tuning")))
        kind, value = describe_background(self.background)
        d["kind"] = kind
        if kind == "blur":
            d["blur"] = value
        elif kind == "colour":
            d["colour"] = value
        return d


def describe_background(spec: str) -> tuple[str, Any]:
    """(kind, value) of a background spec: ``("blur", 12.0)``, ``("colour", "#00b140")``, ...

    Anything the grammar does not know (an upload id) is an image."""
    try:
        parsed = BackgroundSpec.parse(spec)
    except BackdropError:
        return "image", spec
    if parsed.kind == "blur":
        return "blur", parsed.params["strength"]
    if parsed.kind == "colour":
        return "colour", format_colour(parsed.params["rgb"])
    if parsed.kind in ("matte", "presenter"):
        return parsed.kind, None
    return "image", spec


def _check_blur(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OptionError(f"blur must be a number in (0, 100], got {value!r}")
    try:
        return check_strength(value)
    except BackdropError:
        raise OptionError(f"blur must be a number in (0, 100], got {value!r}") from None


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise OptionError(f"{name} must be true or false, got {value!r}")
    return value


def _check_str(name: str, value: Any, limit: int = 4096) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f"{name} must be a non-empty string, got {type(value).__name__}")
    if len(value) > limit:
        raise OptionError(f"{name} is too long ({len(value)} characters)")
    return value.strip()


def check_background(spec: str, allow_files: bool, known_uploads: Callable[[str], bool] | None = None,
                     image_only: bool = False) -> str:
    """A live background spec, normalised; files only with ``allow_files`` (never from the web,
    where a page may pick colours, blur, the matte and its own uploads)."""
    if known_uploads is not None and known_uploads(spec):
        return spec
    refuse = OptionError(f"unknown background {spec[:40]!r}: use {', '.join(page_kinds())} or an uploaded image")
    try:
        parsed = BackgroundSpec.parse(spec)
    except BackdropError as exc:
        if not allow_files and str(exc).startswith("unsupported background"):
            raise refuse from None
        raise OptionError(str(exc)) from None
    if not parsed.live:
        raise OptionError("a live stream has no alpha channel: use a colour, blur or an image")
    if image_only and parsed.kind not in ("image", "video"):
        raise OptionError(f"image must be a picture or a video file, not {spec[:40]!r}")
    if parsed.files() and not allow_files:
        raise refuse
    return parsed.format() if not parsed.files() else spec


def slide_step(value: Any) -> int:
    """``next`` -> +1, ``prev`` -> -1, or a small whole number of slides to move."""
    if value in ("next", "prev"):
        return 1 if value == "next" else -1
    if isinstance(value, int) and not isinstance(value, bool) and -1000 <= value <= 1000:
        return value
    raise OptionError(f"slide must be 'next', 'prev' or a whole number, got {str(value)[:40]!r}")


def apply_changes(current: LiveSettings, changes: Mapping[str, Any], *, allow_files: bool = True,
                  known_uploads: Callable[[str], bool] | None = None) -> LiveSettings:
    """Validate ``changes`` (a JSON object) against ``current`` and return the new settings.

    Keys: ``effect`` (bool), ``background`` (spec), ``colour``/``color`` (``#rrggbb`` or a name),
    ``blur`` (strength in (0, 100]), ``image`` (a file path, or an upload id on the web),
    ``model``, ``mirror`` (bool), ``slide`` (``next``/``prev`` or a step: presenter mode, an
    action rather than a setting, see :func:`slide_step`), and every live stage option
    (``temporal``, ``light_wrap``, ...). ``allow_files=False`` (the web) refuses file paths and
    model files: a browser may only pick colours, blur, its own uploads and the known model names.
    """
    if not isinstance(changes, Mapping):
        raise OptionError("settings must be a JSON object")
    unknown = [k for k in changes if k not in SETTING_KEYS]
    if unknown:
        shown = [k for k in SETTING_KEYS if k not in ("color", "colour")]
        raise OptionError(f"unknown setting {str(unknown[0])[:40]!r}: use colour, {', '.join(shown)}")
    new = current
    if "slide" in changes:
        slide_step(changes["slide"])  # validated here, acted on by LiveProcessor.update
    if "effect" in changes:
        new = replace(new, effect=_check_bool("effect", changes["effect"]))
    if "mirror" in changes:
        new = replace(new, mirror=_check_bool("mirror", changes["mirror"]))
    if "model" in changes:
        model = _check_str("model", changes["model"], 1024)
        if model not in KNOWN_MODELS and not allow_files:
            raise OptionError(f"unknown model {model[:40]!r}: choose {', '.join(KNOWN_MODELS)}")
        new = replace(new, model=model)
    if "background" in changes:
        new = replace(new, background=check_background(
            _check_str("background", changes["background"]), allow_files, known_uploads))
    for key in ("colour", "color"):
        if key in changes:
            text = _check_str(key, changes[key], 64)
            rgb = parse_colour(text)
            if rgb is None:
                raise OptionError(f"{key} must be #rrggbb or one of {', '.join(NAMED_COLOURS)}, got {text[:40]!r}")
            new = replace(new, background=format_colour(rgb))
    if "blur" in changes:
        new = replace(new, background=BackgroundSpec("blur", {"strength": _check_blur(changes["blur"])}).format())
    if "image" in changes:
        new = replace(new, background=check_background(
            _check_str("image", changes["image"]), allow_files, known_uploads, image_only=True))
    tuning = dict(new.tuning)
    for key, opt in LIVE_OPTIONS.items():
        if key in changes:
            value = changes[key]
            if opt.names_files and not allow_files and not (
                    isinstance(value, str) and value.strip() in ("", *opt.repeatable)):  # before any file look-up
                raise OptionError(f"{key} cannot name a file here: use {', '.join(opt.repeatable) or 'nothing'}")
            tuning[key] = opt.check(value)
    if tuning != dict(new.tuning):
        new = replace(new, tuning=tuple(sorted(tuning.items())))
    return new


# -- keyboard ---------------------------------------------------------------------------------
KEY_HELP = ("keys: space/e effect on/off, u blur, +/- blur strength, c next colour, b learn the background "
            "(step out of the frame first), m mirror, n/p next/previous slide (presenter), q/Esc quit")


def key_changes(key: str, settings: LiveSettings) -> dict[str, Any] | str | None:
    """What a key pressed in the preview window does: a settings change, ``"quit"`` or None."""
    kind, value = describe_background(settings.background)
    if key in ("q", "\x1b"):
        return "quit"
    if key in (" ", "e"):
        return {"effect": not settings.effect}
    if key == "m":
        return {"mirror": not settings.mirror}
    if key in ("n", "p"):
        return {"slide": "next" if key == "n" else "prev"}
    if key == "u":
        return {"blur": value if kind == "blur" else DEFAULT_BLUR, "effect": True}
    if key == "b":  # clean plate: the next frames, with nobody in them, become the background model
        return {"plate": "learn", "effect": True}
    if key in ("+", "=", "-", "_"):
        strength = value if kind == "blur" else DEFAULT_BLUR
        step = 2.0 if key in ("+", "=") else -2.0
        return {"blur": min(100.0, max(1.0, strength + step)), "effect": True}
    if key == "c":
        current = value if kind == "colour" else None
        i = COLOUR_CYCLE.index(current) + 1 if current in COLOUR_CYCLE else 0
        return {"colour": COLOUR_CYCLE[i % len(COLOUR_CYCLE)], "effect": True}
    return None
