"""Where numba keeps compiled code: a directory per version of bedflow's source.

numba checks a cached function against its own file only, so a change to a function it inlines
from another module (the engine's queue, discharge holds) would leave stale machine code in use.
Keying the cache directory by a hash of every source file makes any edit a fresh compile. Set
before any ``@njit(cache=True)`` function is defined; ``NUMBA_CACHE_DIR`` set by the user wins.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def source_hash(package: Path = PACKAGE) -> str:
    """Hash of the names and contents of every .py file in the package."""
    h = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def use_source_keyed_cache() -> Path | None:
    """Point numba's cache at ``sim/__pycache__/numba/<source hash>`` (other versions' caches
    there are removed); returns the directory, or None if the user chose one or the package
    directory is not writable (numba's own default then applies)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    root = PACKAGE / "__pycache__" / "numba"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(root, os.W_OK):
        return None
    here = root / source_hash()
    for old in root.iterdir():
        if old != here:
            shutil.rmtree(old, ignore_errors=True)
    from numba.core import config

    config.CACHE_DIR = str(here)
    os.environ["NUMBA_CACHE_DIR"] = str(here)  # for worker processes started from here
    return here
