"""Shared test setup: import path, fixture location, small helpers."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / 'shared' / 'fixtures'

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def fixtures_dir():
    """The shared fixture folder; tests that need it skip when it is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f'shared fixtures not found at {FIXTURES}')
    return FIXTURES
