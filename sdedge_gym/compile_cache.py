"""Where the compiled kernels are cached: a per-user folder, never the installed package's own folders.

numba's ``cache=True`` writes its index and object files (``*.nbi``, ``*.nbc``) into the ``__pycache__``
folder beside the source when that folder is writable. For an installed copy that is
``site-packages/sdedge_gym/__pycache__``, which ``pip uninstall`` does not know about and leaves behind; a
later ``pip install -e .`` then meets a folder ``sdedge_gym`` without ``__init__.py`` that Python imports
as an empty namespace package, and nothing registers. So the package's compiled functions are cached in

* ``$NUMBA_CACHE_DIR`` when it is set (numba's own setting, honoured as numba honours it), else
* the per-user cache folder, ``~/.cache/sdedge-gym/numba`` on Linux (``$XDG_CACHE_HOME`` respected;
  the platform's equivalent elsewhere), in a subfolder per source folder, so that a checkout and an
  installed copy never share entries; else, where that folder is not writable,
* a per-user folder in the system's temporary directory.

Only functions defined in ``sdedge_gym`` and ``sdedge_agents`` are claimed: other libraries' numba caches
are untouched. :func:`install` runs once, before the first ``@njit(cache=True)`` of the package.
"""

from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path
from typing import Any

from numba.core import caching, config
from numba.misc.appdirs import AppDirs

PACKAGES = ("sdedge_gym", "sdedge_agents")


def user_cache_folder() -> Path:
    """The per-user folder the package's compiled kernels go to when ``NUMBA_CACHE_DIR`` is not set."""
    return Path(AppDirs(appname="sdedge-gym", appauthor=False).user_cache_dir) / "numba"


def _fallback_folder() -> Path:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's anonymous uid)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"sdedge-gym-numba-{user}"


class PackageCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """numba's cache locator for this package's functions: the per-user folder instead of ``__pycache__``."""

    def __init__(self, py_func: Any, py_file: str, root: Path) -> None:
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(root / self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self) -> str:
        return self._cache_path

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> PackageCacheLocator | None:
        if config.CACHE_DIR:  # NUMBA_CACHE_DIR is set: numba's own locator puts it there
            return None
        if py_func.__module__.split(".")[0] not in PACKAGES or not os.path.exists(py_file):
            return None
        for root in (user_cache_folder(), _fallback_folder()):
            locator = cls(py_func, py_file, root)
            try:
                locator.ensure_cache_path()
            except OSError:  # not writable: try the next folder
                continue
            return locator
        return None  # nowhere writable: numba's own locators decide (as for any numba library)


def install() -> None:
    """Put :class:`PackageCacheLocator` first in numba's list of cache locators (once)."""
    cache_impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in numba 0.61
    locators = cache_impl._locator_classes
    if PackageCacheLocator not in locators:
        locators.insert(0, PackageCacheLocator)
