"""numba's cache is keyed by the whole source, so no edit can leave stale compiled code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from numba.core import config

from sim import compile_cache


def test_source_hash_changes_with_any_file(tmp_path: Path) -> None:
    (tmp_path / "engines").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "engines" / "queue.py").write_text("y = 2\n")
    before = compile_cache.source_hash(tmp_path)
    (tmp_path / "engines" / "queue.py").write_text("y = 3\n")  # an inlined helper's module
    assert compile_cache.source_hash(tmp_path) != before
    (tmp_path / "engines" / "queue.py").write_text("y = 2\n")
    assert compile_cache.source_hash(tmp_path) == before


def test_this_process_caches_under_the_current_source_hash() -> None:
    here = Path(config.CACHE_DIR)
    if here.parent != compile_cache.PACKAGE / "__pycache__" / "numba":
        pytest.skip("NUMBA_CACHE_DIR chosen by the user")
    assert here.name == compile_cache.source_hash()
    assert os.environ["NUMBA_CACHE_DIR"] == str(here)  # inherited by worker processes


def test_a_user_chosen_cache_dir_wins(monkeypatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/else")
    assert compile_cache.use_source_keyed_cache() is None
