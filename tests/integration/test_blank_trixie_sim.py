"""The trixie path from blank cards: cloud-init (NoCloud) instead of firstrun.sh.

Blank trixie nodes (`sim up --blank --release trixie`) are Debian trixie with cloud-init,
as Raspberry Pi OS trixie; `piherd image` writes user-data, meta-data, network-config and
`ds=nocloud;i=ID` in cmdline.txt, and cloud-init applies them at the first boot (host
name, admin user and key, host keys, the static address through NetworkManager, sshd).
Then the same chain as bookworm: discover by MAC, `up` with no password and no key
accepted anew, `piherd ssh`, an MPI job through Slurm (trixie's Slurm and Open MPI).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from test_blank_sim import blank_to_mpi, inside

from piherd.sim.virtual_cluster import VirtualCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from rpi_image import build_image

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def sim(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[VirtualCluster]:
    with sim_cm("tbtx", 3, blank=True, release="trixie") as vc:
        yield vc


def test_trixie_cards_boot_through_cloud_init_into_the_cluster(
    sim: VirtualCluster, tmp_path: Path
) -> None:
    build_image(tmp_path / "raspios-trixie.img", "trixie")
    blank_to_mpi(sim, tmp_path / "raspios-trixie.img", tmp_path / "cards")
    said = inside(
        sim, "node02", "cloud-init status --long; grep -c WARNING /var/log/cloud-init.log"
    )
    assert "status: done" in said and "DataSourceNoCloud" in said, said
    assert said.split()[-1] == "0", said  # every file piherd wrote passed cloud-init's checks
