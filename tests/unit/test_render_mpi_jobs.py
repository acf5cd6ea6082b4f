"""Jobs as users start them: srun's MPI plugin, the cluster key, Slurm accounting (render)."""

from __future__ import annotations

import getpass
import subprocess
from pathlib import Path

import asyncssh
from test_render_support import GOLDEN

from piherd.render import RenderContext, UnitSpec, node_packages, node_units, render_node
from piherd.secrets import load_or_create_secrets
from piherd.services import loads
from piherd.services.cluster_key import CLIENT_DROPIN, CLUSTER_KEY
from piherd.services.slurm import SLURM_CONF
from piherd.services.slurm_accounting import CTLD_DROPIN, MARIADB_CONF, SLURMDBD_CONF

BASE = (GOLDEN / "sim" / "cluster.toml").read_text()
KEY = asyncssh.generate_private_key("ssh-ed25519", comment="piherd-cluster@t")
CTX = RenderContext(
    b"k" * 1024,
    b"private\n",
    "ssh-ed25519 AAAA test",
    cluster_private_key=KEY.export_private_key(),
    cluster_public_key=KEY.export_public_key().decode(),
)


def _accounting() -> str:
    marker = "[services.slurm]\n"
    assert marker in BASE
    return BASE.replace(marker, marker + "accounting = true\n")


def test_srun_starts_mpi_through_pmix_and_a_bad_rank_ends_the_step() -> None:
    cluster = loads(BASE)
    conf = render_node(cluster, cluster.head, CTX)["/etc/slurm/slurm.conf"].content.decode()
    assert "MpiDefault=pmix\n" in conf and "KillOnBadExit=1\n" in conf
    set_to = loads(BASE.replace("[services.slurm]\n", '[services.slurm]\nmpi_default = "none"\n'))
    assert b"MpiDefault=none\n" in render_node(set_to, set_to.head, CTX)[SLURM_CONF].content


def test_mpi_default_follows_the_mpi_the_cluster_uses() -> None:
    """Debian's MPICH speaks PMI-2 to srun, its Open MPI (and mpi4py) PMIx."""
    for implementations, plugin in (
        ('["mpich"]', b"pmi2"),
        ('["openmpi", "mpich"]', b"pmix"),
        ('["openmpi"]', b"pmix"),
    ):
        assert "[services.mpi]" not in BASE
        text = BASE + f"\n[services.mpi]\nimplementations = {implementations}\n"
        cluster = loads(text)
        conf = render_node(cluster, cluster.head, CTX)[SLURM_CONF].content
        assert b"MpiDefault=" + plugin + b"\n" in conf, implementations


def test_every_slurm_node_gets_the_library_the_pmix_plugin_loads() -> None:
    cluster = loads(BASE)
    for node in cluster.nodes:
        assert "libpmix-dev" in node_packages(cluster, node), node.name


def test_cluster_key_is_the_admin_users_own_and_used_for_cluster_nodes_only(
    tmp_path: Path,
) -> None:
    me = getpass.getuser()
    cluster = loads(BASE.replace('admin_user = "piherd"', f'admin_user = "{me}"'))
    assert cluster.admin_user == me
    worker = cluster.node("node02")
    files = render_node(cluster, worker, CTX)
    key = files[CLUSTER_KEY]
    assert (key.mode, key.owner, key.secret) == (0o600, me, True)
    assert key.content == CTX.cluster_private_key
    config = tmp_path / "ssh_config"
    config.write_bytes(files[CLIENT_DROPIN].content)
    for host, uses_key in (("node03", True), (str(cluster.node("node03").address), True)):
        parsed = subprocess.run(
            ["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, check=True
        )
        assert (f"identityfile {CLUSTER_KEY}" in parsed.stdout) == uses_key, host
    elsewhere = subprocess.run(
        ["ssh", "-G", "-F", str(config), "example.org"], capture_output=True, text=True, check=True
    )
    assert CLUSTER_KEY not in elsewhere.stdout


def test_cluster_key_is_authorized_from_the_cluster_subnet_only(tmp_path: Path) -> None:
    cluster = loads(BASE)
    path = f"/etc/ssh/piherd/authorized_keys/{cluster.admin_user}"
    entries = render_node(cluster, cluster.node("node03"), CTX)[path].content.decode()
    public = " ".join(CTX.cluster_public_key.split()[:2])
    line = next(x for x in entries.splitlines() if public in x)
    assert line.startswith(f'from="{cluster.network.subnet}",restrict,pty ')
    keys = tmp_path / "authorized_keys"
    keys.write_text(line + "\n")
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(keys)], capture_output=True)
    assert listed.returncode == 0, listed.stderr


def test_no_cluster_key_without_one_in_the_context() -> None:
    cluster = loads(BASE)
    bare = RenderContext(b"k" * 1024, b"private\n", "ssh-ed25519 AAAA test")
    files = render_node(cluster, cluster.head, bare)
    assert CLUSTER_KEY not in files and CLIENT_DROPIN not in files


def test_secrets_make_a_cluster_key_of_its_own(tmp_path: Path) -> None:
    cluster = loads(BASE.replace("[cluster]\n", '[cluster]\nsecrets_dir = "s"\n'), base=tmp_path)
    secrets = load_or_create_secrets(cluster)
    assert (tmp_path / "s" / "cluster_key").stat().st_mode & 0o777 == 0o600
    key = asyncssh.import_private_key(secrets.cluster_private_key)
    assert key.export_public_key().decode().split()[:2] == secrets.cluster_public_key.split()[:2]
    assert secrets.cluster_public_key not in (secrets.watch_public_key, secrets.storage_public_key)


def test_accounting_is_off_by_default() -> None:
    cluster = loads(BASE)
    files = render_node(cluster, cluster.head, CTX)
    assert SLURMDBD_CONF not in files and MARIADB_CONF not in files
    conf = files["/etc/slurm/slurm.conf"].content
    assert b"AccountingStorageType=accounting_storage/none" in conf
    assert "slurmdbd" not in node_packages(cluster, cluster.head)


def test_accounting_puts_slurmdbd_and_mariadb_on_the_head_only() -> None:
    cluster = loads(_accounting())
    head = render_node(cluster, cluster.head, CTX)
    dbd = head[SLURMDBD_CONF]
    assert (dbd.mode, dbd.owner, dbd.group) == (0o600, "slurm", "slurm")
    assert "StoragePass" not in dbd.content.decode()  # unix_socket: no password anywhere
    assert "bind-address = 127.0.0.1\n" in head[MARIADB_CONF].content.decode()
    assert "ExecStartPre=-/usr/bin/timeout" in head[CTLD_DROPIN].content.decode()
    conf = head["/etc/slurm/slurm.conf"].content.decode()
    assert f"AccountingStorageHost={cluster.head.address}\n" in conf
    assert {"mariadb-server", "slurmdbd"} <= set(node_packages(cluster, cluster.head))
    units = [u.name for u in node_units(cluster, cluster.head)]
    order = [units.index(u) for u in ("munge.service", "mariadb.service", "slurmdbd.service")]
    assert order == sorted(order) and order[-1] < units.index("slurmctld.service")
    worker = cluster.node("node02")
    assert SLURMDBD_CONF not in render_node(cluster, worker, CTX)
    assert "slurmdbd" not in node_packages(cluster, worker)
    assert UnitSpec("slurmdbd.service") not in node_units(cluster, worker)


def test_systemd_accepts_the_slurmctld_drop_in(tmp_path: Path) -> None:
    cluster = loads(_accounting())
    unit = tmp_path / "slurmctld.service"
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    dropin = tmp_path / "slurmctld.service.d"
    dropin.mkdir()
    (dropin / "piherd.conf").write_bytes(
        render_node(cluster, cluster.head, CTX)[CTLD_DROPIN].content
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "./slurmctld.service"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    problems = [
        line for line in result.stderr.splitlines() if "slurmdbd.service" not in line and line
    ]
    assert problems == [], result.stderr
