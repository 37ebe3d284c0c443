"""Shared pytest fixtures for the nuat test suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/nuat_testing.py


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Folder with the real data sets (``$NUAT_TEST_DATA``, default ``<repo>/../shared/data``).

    Skips (with the path in the reason) only when the folder does not exist at all.
    """
    path = Path(os.environ.get("NUAT_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real data folder {path} does not exist (set NUAT_TEST_DATA)")
    return path
