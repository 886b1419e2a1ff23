"""umap's compiled code kept on disk, so a new process does not compile it again.

umap and pynndescent are numba code: the first UMAP in a process compiles it (30-40 s on two busy
cores). numba can keep what it compiled in a cache folder, but only for functions decorated with
`cache=True`: pynndescent asks for it on most of its functions, umap on one of its ~110. Setting
`NUMBA_CACHE_DIR` alone only moves the cache of the former (numba writes it next to the sources,
in site-packages, by default). So after importing umap, `import_umap` also turns caching on for
each of their jitted module-level functions that does not ask for it, the way `cache=True` would
have (`Dispatcher.enable_caching`). A function with two dispatchers (umap compiles its layout
step with and without `parallel`) is left alone: numba's cache index does not tell the two apart.

Two of pynndescent's functions cannot be cached (numba: "uses dynamic globals"): NN-descent,
the kNN path above 4,096 points, is still compiled in every process, and numba's warning about it
is silenced for these two packages only.

The folder's name carries the umap and pynndescent versions: numba notices a changed source file
but not a changed function that a cached one calls from another file.

bench/diversity.py on two busy cores, first UMAP of a fresh process (import + first `project`):
2,000 points 20.4 s without the folder, 10.5 s with a filled one (a fit alone: 5.5 s); 5,000
points (NN-descent) 49.6 s -> 32.1 s (a rerun: 28.2 -> 12.8 s, 69.5 -> 38.5 s; fits 8-9 s). The
first process on an empty folder pays once more than without (42.5 s, 87.6 s): it compiles
pynndescent's code again, which site-packages had cached.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

PACKAGES = ("umap", "pynndescent")
_lock = threading.Lock()
_cached_packages: set[str] = set()  # per process, as numba's own configuration is


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "none"


def numba_cache_folder(base: Path) -> Path:
    """The folder under `base` for this install's umap and pynndescent versions."""
    return base / f"umap-{_version('umap-learn')}_pynndescent-{_version('pynndescent')}"


def use_numba_cache(base: Path) -> Path:
    """Point numba's cache at `numba_cache_folder(base)` and return the folder numba now uses.

    A `NUMBA_CACHE_DIR` already in the environment wins (it is the user's). Call it before umap
    is imported: a function keeps the cache location it had when it was decorated.
    """
    folder = Path(os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_folder(base))))
    if "numba" in sys.modules:  # numba read its environment when imported: have it read again
        from numba.core import config

        config.reload_config()
    return folder


def enable_caching(packages: tuple[str, ...] = PACKAGES) -> int:
    """Turn numba's disk cache on for every jitted module-level function of the (imported)
    packages that has none; return how many were turned on (see the module doc)."""
    try:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher
    except ImportError as exc:  # another numba layout: only the speed-up is lost
        logger.warning("numba's cache cannot be turned on (%s); umap compiles per process", exc)
        return 0
    by_function: dict[Any, dict[int, Any]] = {}
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in packages:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher):
                by_function.setdefault(value.py_func, {})[id(value)] = value
    # A function numba finds uncachable only after compiling it warns in every process; these
    # are the packages' own (pynndescent's nn_descent), so the warning says nothing to act on.
    for package in packages:
        warnings.filterwarnings(
            "ignore", "Cannot cache compiled function", module=rf".*[/\\]{package}[/\\]"
        )
    enabled = 0
    for dispatchers in by_function.values():
        if len(dispatchers) != 1:  # one function under several option sets: caches would collide
            continue
        (dispatcher,) = dispatchers.values()
        if isinstance(getattr(dispatcher, "_cache", None), NullCache):
            dispatcher.enable_caching()
            enabled += 1
    return enabled


def import_umap(numba_cache_dir: Path | None = None) -> ModuleType:
    """`import umap`; with `numba_cache_dir`, its compiled code is kept there across processes
    (`use_numba_cache` before the first import, `enable_caching` after)."""
    with _lock:
        if numba_cache_dir is not None and "umap" not in sys.modules:
            folder = use_numba_cache(numba_cache_dir)
            logger.info("numba cache: %s", folder)
        import umap

        if numba_cache_dir is not None and not _cached_packages:
            logger.info("numba cache turned on for %d functions", enable_caching(PACKAGES))
            _cached_packages.update(PACKAGES)
    return umap
