"""Slurm accounting on the head ([services.slurm] accounting = true): slurmdbd and MariaDB.

slurmdbd stores job records in MariaDB, so `sacct` and `sreport` work and the records
outlive slurmctld restarts. No database password exists: slurmdbd (running as the
`slurm` user) logs in to MariaDB through its Unix socket with the `unix_socket`
plugin, as the MariaDB user `slurm`, which MariaDB creates at start from an init file.
MariaDB listens on 127.0.0.1 only; slurmdbd.conf is 0600, owned by slurm (slurmdbd
refuses anything else). slurmctld and sacct reach slurmdbd on port 6819, authenticated
by munge.
"""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.model.specs import FileSpec
from piherd.render.spec import text

SLURMDBD_CONF = "/etc/slurm/slurmdbd.conf"
MARIADB_CONF = "/etc/mysql/mariadb.conf.d/90-piherd-slurm.cnf"
DB_INIT = "/etc/mysql/piherd-slurm-accounting.sql"
CTLD_DROPIN = "/etc/systemd/system/slurmctld.service.d/piherd-accounting.conf"
DBD_PORT = 6819
DBD_WAIT_SECONDS = 60
DATABASE = "slurm_acct_db"
PACKAGES = ("mariadb-server", "slurmdbd")
DATABASE_UNIT = "mariadb.service"  # slurm.py's units start it before slurmdbd


def slurm_conf_lines(cluster: Cluster, enabled: bool) -> list[str]:
    """slurm.conf's accounting lines: slurmdbd on the head when on, none otherwise."""
    if not enabled:
        return [
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
        ]
    return [
        "# Job records go to slurmdbd on the head (services.slurm.accounting).",
        "AccountingStorageType=accounting_storage/slurmdbd",
        f"AccountingStorageHost={cluster.head.address}",
        f"AccountingStoragePort={DBD_PORT}",
        "JobAcctGatherType=jobacct_gather/linux",
    ]


def render(cluster: Cluster, node: Node) -> list[FileSpec]:
    """slurmdbd.conf, MariaDB's settings, the database user's init file, and slurmctld's
    drop-in that waits for slurmdbd (head only)."""
    if not node.is_head:
        return []
    dbd = text(
        cluster,
        SLURMDBD_CONF,
        [
            "AuthType=auth/munge",
            f"DbdHost={node.name}",
            f"DbdPort={DBD_PORT}",
            "SlurmUser=slurm",
            "LogFile=/var/log/slurm/slurmdbd.log",
            "PidFile=/run/slurmdbd.pid",
            "StorageType=accounting_storage/mysql",
            "# localhost: MariaDB's Unix socket; no password (the unix_socket plugin).",
            "StorageHost=localhost",
            "StorageUser=slurm",
            f"StorageLoc={DATABASE}",
        ],
        mode=0o600,
        owner="slurm",
        group="slurm",
        restarts=("slurmdbd.service",),
    )
    mariadb = text(
        cluster,
        MARIADB_CONF,
        [
            "[mysqld]",
            "# Only slurmdbd on this node uses the database.",
            "bind-address = 127.0.0.1",
            "# slurmdbd's advice for its long transactions (slurmdbd.conf(5)).",
            "innodb_lock_wait_timeout = 900",
            f"init_file = {DB_INIT}",
        ],
        restarts=(DATABASE_UNIT,),
    )
    init = text(
        cluster,
        DB_INIT,
        [
            "-- Run by MariaDB at every start: slurmdbd's database user, no password.",
            "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;",
            f"GRANT ALL ON {DATABASE}.* TO 'slurm'@'localhost';",
        ],
        comment="--",
        restarts=(DATABASE_UNIT,),
    )
    return [dbd, mariadb, init, _ctld_dropin(cluster)]


def _ctld_dropin(cluster: Cluster) -> FileSpec:
    """slurmctld waits (a while) for slurmdbd to answer: it adds the cluster to the
    database when it registers at start, and slurmdbd listens a moment after it started
    (Type=simple), so without this the first start after installing leaves no cluster."""
    wait = "until /usr/bin/sacctmgr -n show cluster >/dev/null 2>&1; do sleep 1; done"
    return text(
        cluster,
        CTLD_DROPIN,
        [
            "[Unit]",
            "Wants=slurmdbd.service",
            "After=slurmdbd.service",
            "",
            "[Service]",
            "# '-': slurmctld starts anyway when slurmdbd does not answer (it retries later).",
            f"ExecStartPre=-/usr/bin/timeout {DBD_WAIT_SECONDS} /bin/sh -c '{wait}'",
        ],
        restarts=("slurmctld.service",),
    )


def packages(node: Node) -> tuple[str, ...]:
    """MariaDB and slurmdbd on the head."""
    return PACKAGES if node.is_head else ()
