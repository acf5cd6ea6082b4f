"""piherd bench hpl without a cluster: sizing, the process grid, hpcc's input and output."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.app.hpl import (
    HplRun,
    batch_script,
    grid,
    hpccinf,
    parse_sample,
    parse_summary,
    size,
)
from piherd.cli.bench import runs_table
from piherd.cli.main import cli

SUMMARY = """\
Begin of Summary section.
VersionMajor=1
HPL_Tflops=0.0123456
HPL_time=2.5
HPL_eps=1.11022e-16
HPL_N=4096
HPL_NB=128
HPL_nprow=2
HPL_npcol=4
StarDGEMM_Gflops=3.2
End of Summary section.
"""


GRIDS = [(1, (1, 1)), (4, (2, 2)), (8, (2, 4)), (12, (3, 4)), (7, (1, 7)), (16, (4, 4))]


@pytest.mark.parametrize(("ranks", "expected"), GRIDS)
def test_grid_is_as_square_as_the_ranks_allow(ranks: int, expected: tuple[int, int]) -> None:
    assert grid(ranks) == expected


def test_size_fills_the_fraction_of_memory_in_whole_blocks() -> None:
    # Four Pi 4s with 4 GiB each (Slurm: 3891 MiB), 80%: N about 40400, a multiple of 128.
    sizing = size(3891, 4, 16, 0.8)
    assert sizing.n % 128 == 0 and 40000 < sizing.n < 40400
    assert (sizing.p, sizing.q, sizing.ranks) == (4, 4, 16)
    assert 8 * sizing.n**2 <= 3891 * 1024 * 1024 * 4 * 0.8
    assert size(10, 1, 1, 0.001).n == 128  # never below one block


def test_hpccinf_has_hpl_on_its_lines() -> None:
    lines = hpccinf(size(3891, 1, 4, 0.5)).splitlines()
    assert lines[5].split()[0] == str(size(3891, 1, 4, 0.5).n)
    assert lines[7].split()[0] == "128"
    assert (lines[10].split()[0], lines[11].split()[0]) == ("2", "2")
    assert lines[31].startswith("#####") and len(lines) == 36


def test_the_summary_and_the_samples_are_read() -> None:
    values = parse_summary(SUMMARY)
    assert values["HPL_Tflops"] == pytest.approx(0.0123456) and values["HPL_N"] == 4096
    assert parse_sample("61234\nthrottled=0x50005\n") == (61.234, 0x50005)
    assert parse_sample("-\n-\n") == (None, None)


def test_the_batch_script_pins_nodes_and_ranks() -> None:
    script = batch_script(["node02", "node03"], 4, "/cluster/.piherd/hpl/x", "piherd-hpl-x")
    assert "#SBATCH --nodelist=node02,node03\n" in script
    assert "#SBATCH --ntasks-per-node=4\n" in script and script.endswith("exec mpirun hpcc\n")


def test_the_table_shows_efficiency_temperature_and_throttling() -> None:
    from rich.console import Console

    runs = [
        HplRun("node02", 1, 4, 4096, 128, "2x2", 2.5, 10.0, 1.0,
               {"node02": 55.0}, {"node02": "0x0"}),
        HplRun("node[02-05]", 4, 16, 8192, 128, "4x4", 9.0, 30.0, 0.75,
               {"node02": 71.5, "node03": None}, {"node02": "0xe000e", "node03": "0x0"}),
    ]  # fmt: skip
    console = Console(width=160, record=True)
    console.print(runs_table(runs))
    text = console.export_text()
    assert "75%" in text and "71.5" in text and "0xe000e" in text and "node[02-05]" in text


def test_bad_fraction_and_node_set_exit_2() -> None:
    example = Path(__file__).parents[2] / "examples" / "cluster.toml"
    for args in (["--fraction", "nan"], ["--fraction", "0"], ["--fraction", "2"], ["node99"]):
        result = CliRunner().invoke(cli, ["bench", "hpl", "-f", str(example), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
