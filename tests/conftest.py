"""Shared pytest configuration: paths to test data."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.fixture
def tests_dir() -> Path:
    return TESTS
