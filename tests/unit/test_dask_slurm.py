"""piherd.app.dask_slurm without a cluster: options, wheel platforms, the build script."""

from __future__ import annotations

import subprocess

import pytest

from piherd.app.dask_slurm import (
    JOBQUEUE,
    DaskOptions,
    build_script,
    node_platforms,
    pinned_requirements,
)


def test_platforms_cover_every_manylinux_the_c_library_takes() -> None:
    tags = node_platforms("aarch64", 36)
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux_2_5_aarch64" in tags and "manylinux_2_4_aarch64" not in tags
    assert {"manylinux2014_aarch64", "manylinux2010_aarch64", "manylinux1_aarch64"} <= set(tags)
    assert "manylinux2014_x86_64" not in node_platforms("x86_64", 12)


def test_requirements_pin_this_pythons_dask_and_add_jobqueue() -> None:
    from importlib import metadata

    pins = pinned_requirements()
    assert f"distributed=={metadata.version('distributed')}" in pins
    assert f"dask=={metadata.version('dask')}" in pins
    assert pins[-1] == JOBQUEUE


@pytest.mark.parametrize(
    "options",
    [
        DaskOptions(workers=0),
        DaskOptions(workers=5000),
        DaskOptions(cores=0),
        DaskOptions(memory="1GiB; rm -rf /"),
        DaskOptions(memory="lots"),
        DaskOptions(walltime="1h"),
        DaskOptions(walltime="01:00:00\n"),
    ],
)
def test_bad_options_are_refused(options: DaskOptions) -> None:
    with pytest.raises(ValueError):
        options.check()


def test_good_options_pass() -> None:
    DaskOptions(workers=3, cores=2, memory="512MiB", walltime="1-00:00").check()
    DaskOptions(memory="1.5 GB", walltime="00:30").check()


def test_build_script_quotes_and_builds_once() -> None:
    script = build_script("/srv/my cluster/w", "/srv/my cluster/v", ["dask==1", "x; y"])
    assert "'/srv/my cluster/v'/piherd-ready" in script and "'x; y'" in script
    # The script is valid sh (parsed, not run).
    assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0
