"""Shared test setup: import path, test data location, small helpers."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / 'tests' / 'data'   # networks, photos and directions made by the upstream code

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def fixtures_dir():
    """The test data folder (tests/data): fixture networks with upstream renders, photos, directions."""
    return FIXTURES
