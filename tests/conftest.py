"""Shared pytest configuration: hypothesis profiles and paths to test data.

Profiles: `quick` (the default, for `make unit` and local runs) tries a fifth of each
property test's examples; `ci` (`make test`: `--hypothesis-profile=ci`, or
HYPOTHESIS_PROFILE=ci) tries all of them. Neither has a deadline: a loaded machine
must not turn slow generation into a failure (no timing in tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from hypothesis_examples import THOROUGH

TESTS = Path(__file__).parent

for _profile, _share in (("ci", 1), ("quick", 5)):
    settings.register_profile(
        _profile,
        max_examples=THOROUGH // _share,
        deadline=None,
        suppress_health_check=(HealthCheck.too_slow,),
    )
# `--hypothesis-profile` (hypothesis' pytest plugin, applied after this file) wins over this.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture
def tests_dir() -> Path:
    return TESTS


def pytest_configure(config: pytest.Config) -> None:
    """Every test, and every piherd it starts, gets a config dir of its own: the user's
    current-cluster setting (~/.config/piherd/current) is neither read nor written.

    Ctrl-C is Python's again: a shell starts background commands (`... &`) with SIGINT
    ignored, every child inherits that, and the tests that press Ctrl-C on a piherd
    they start would find it deaf."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config.stash[_CONFIG_KEY] = tempfile.mkdtemp(prefix="piherd-test-config-")
    os.environ["XDG_CONFIG_HOME"] = config.stash[_CONFIG_KEY]


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_CONFIG_KEY, ""), ignore_errors=True)


_CONFIG_KEY = pytest.StashKey[str]()
