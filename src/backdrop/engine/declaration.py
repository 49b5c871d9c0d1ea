"""The declared pipeline as data, for the on-device page (``GET /config``) and anything else that
must not copy it by hand.

The page runs the same stages as WebGL2 passes (``web/static/local-pipeline.js``). Before, its
pass order, its option defaults and the shared constants (temporal fusion's motion thresholds,
the guided filter's radius and eps) were copied from Python and drifted silently. Now the page
builds its pass list from this declaration: every stage in ``STAGES`` order with its phase, its
options (default, range or choices, whether it is live) and the constants its pass shares with
the Python code; ``web`` names the page's pass, and a stage without one is listed as server-only.
"""

from __future__ import annotations

from typing import Any

from ..stages import STAGES
from ..stages.base import Opt
from .options import ENGINE_OPTIONS


def describe_option(opt: Opt, value: Any) -> dict[str, Any]:
    """One option as JSON: its value here (the server's setting, else the declared default)."""
    out: dict[str, Any] = {"name": opt.name, "default": value, "help": opt.help, "live": opt.live,
                           "type": opt.value_type.__name__}
    if opt.choices:
        out["choices"] = list(opt.choices)
    if opt.low is not None:
        out["low"] = opt.low
    if opt.high is not None:
        out["high"] = opt.high
    return out


def pipeline_declaration(options: Any = None) -> dict[str, Any]:
    """``{"stages": [...], "passes": [...], "server_only": [...], "work_size": N}`` in ``STAGES``
    order. ``options`` (a ``PipelineOptions``) gives the values the page starts from (a server
    started with ``--temporal 0.5`` hands that on); None: the declared defaults."""
    def value(opt: Opt) -> Any:
        return getattr(options, opt.name, opt.default) if options is not None else opt.default

    stages = []
    for spec in STAGES:
        stages.append({"name": spec.name, "phase": spec.phase, "summary": spec.summary, "web": spec.web,
                       "options": [describe_option(o, value(o)) for o in spec.options],
                       "constants": dict(spec.constants)})
    work = next(o for o in ENGINE_OPTIONS if o.name == "work_size")
    return {"stages": stages, "passes": [s["web"] for s in stages if s["web"]],
            "server_only": [s["name"] for s in stages if not s["web"]], "work_size": value(work)}
