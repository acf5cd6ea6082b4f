"""The cluster `piherd up` builds, as a pyinfra deploy: pyinfra operations, changes only
where a fact differs, restarts only when an input changed (`_if=any_changed(...)`).

Every file comes from `piherd render --out DIR` (host.data.render_dir) so pyinfra,
Ansible and piherd write byte-identical files. Run (from this directory):

    PEERS_INVENTORY=hosts.json pyinfra -y --sudo inventory.py deploy.py
"""

import time

from pyinfra import host
from pyinfra.operations import apt, files, python, server, systemd
from pyinfra.operations.util import any_changed

HEAD = "head" in host.groups
RENDERED = f"{host.data.render_dir}/{host.name}"
KEYFILE = (
    f"/etc/NetworkManager/system-connections/piherd-{host.data.cluster_interface}.nmconnection"
)


def put(
    path: str, mode: str = "644", user: str = "root", name: str | None = None,
    group: str | None = None,
):  # fmt: skip
    """One rendered file to its place (uploaded only when its sha1 differs)."""
    return files.put(
        name=name or f"File {path}", src=RENDERED + path, dest=path,
        user=user, group=group or user, mode=mode,
    )  # fmt: skip


def reconnect_at_static_address() -> None:
    """The static address is up (the DHCP one gone): reconnect there."""
    host.disconnect()
    host.connector.data["ssh_hostname"] = host.data.static_address
    deadline = time.monotonic() + 120
    time.sleep(2)
    while time.monotonic() < deadline:
        host.connect(show_errors=False)
        if host.connected:
            return
        time.sleep(1)
    raise RuntimeError(f"{host.name}: no answer at {host.data.static_address}")


# --- every node: names, SSH, the static address, packages ----------------------------
hostname_file = put("/etc/hostname")
server.shell(
    name="Set the hostname", commands=[f"hostname {host.name}"], _if=hostname_file.did_change
)
put("/etc/hosts")
put("/etc/ssh/ssh_known_hosts")
put("/etc/ssh/ssh_config.d/piherd.conf")
# The admin's keys (the cluster key too: mpiexec from node to node) where sshd reads them,
# in place before the drop-in that names them.
files.directory(name="Admin keys directory", path="/etc/ssh/piherd/authorized_keys",
                user="root", group="root", mode="755")  # fmt: skip
put("/etc/ssh/piherd/authorized_keys/pi")
put("/etc/piherd/cluster_key", mode="600", user="pi", group="root", name="The cluster key")
put("/etc/ssh/ssh_config.d/piherd-cluster-key.conf")
sshd_files = [
    put("/etc/ssh/sshd_config.d/10-piherd-no-password.conf"),
    put("/etc/ssh/sshd_config.d/piherd-keys.conf"),
]

keyfile = put(KEYFILE, mode="600", name="Static address (NetworkManager keyfile)")
server.shell(
    name="Activate the static address (detached from this SSH session)",
    commands=[
        "systemd-run --collect --unit=peers-net-apply /bin/sh -c 'sleep 1; "
        f"nmcli connection reload && nmcli connection up piherd-{host.data.cluster_interface}'"
    ],
    _if=keyfile.did_change,
)
python.call(
    name="Reconnect at the static address",
    function=reconnect_at_static_address,
    _if=keyfile.did_change,
)

apt.packages(
    name="Install the node's packages",
    packages=host.data.cluster_packages,
    no_recommends=True,
    update=True,
    cache_time=3600,
)

# --- time: the head serves, the workers follow it -------------------------------------
files.directory(name="chrony drop-in directory", path="/etc/systemd/system/chrony.service.d")
chrony_conf = put("/etc/chrony/chrony.conf")
chrony_dropin = put("/etc/systemd/system/chrony.service.d/piherd-container.conf")
systemd.daemon_reload(name="Reload systemd (chrony drop-in)", _if=chrony_dropin.did_change)
files.link(
    name="Mask chrony-wait", path="/etc/systemd/system/chrony-wait.service", target="/dev/null"
)
systemd.service(name="Restart chrony", service="chrony", restarted=True,
                _if=any_changed(chrony_conf, chrony_dropin))  # fmt: skip
systemd.service(name="chrony running", service="chrony", running=True, enabled=True)

# --- shared storage (sshfs): the head exports, the workers mount ------------------------
if HEAD:
    files.directory(name="Export", path="/srv/cluster", user="pi", group="pi", mode="755")
    for path in ("/var/lib/piherd/sftp", "/var/lib/piherd/sftp/srv"):
        files.directory(name=f"Directory {path}", path=path, user="root", group="root", mode="755")
    put("/etc/ssh/piherd/storage_keys/pi")
    sshd_files.append(put("/etc/ssh/sshd_config.d/piherd-storage.conf"))
    storage_units = ["var-lib-piherd-sftp-srv-cluster.mount", "cluster.mount"]
else:
    put("/etc/piherd/storage_key", mode="600")
    storage_units = ["cluster.mount", "cluster.automount"]
unit_files = [put(f"/etc/systemd/system/{unit}") for unit in storage_units]
systemd.daemon_reload(name="Reload systemd (storage units)", _if=any_changed(*unit_files))
systemd.service(name="Reload sshd", service="ssh", reloaded=True, _if=any_changed(*sshd_files))
if HEAD:
    for unit in storage_units:
        systemd.service(
            name=f"Restart {unit}", service=unit, restarted=True, _if=any_changed(*unit_files)
        )
        systemd.service(name=f"{unit} mounted", service=unit, running=True, enabled=True)
else:
    systemd.service(name="Remount /cluster", service="cluster.mount", restarted=True,
                    _if=any_changed(*unit_files))  # fmt: skip
    systemd.service(name="Automount /cluster at boot", service="cluster.automount", enabled=True,
                    running=None)  # fmt: skip
    # A container has no autofs: mount now, as `piherd up` does there.
    systemd.service(name="/cluster mounted", service="cluster.mount", running=True)

# --- munge ----------------------------------------------------------------------------
munge_key = put("/etc/munge/munge.key", mode="400", user="munge", name="The munge key")
systemd.service(name="Restart munge", service="munge", restarted=True, _if=munge_key.did_change)
systemd.service(name="munge running", service="munge", running=True, enabled=True)

# --- Slurm: slurmctld on the head, slurmd on the workers --------------------------------
slurm_files = [put("/etc/slurm/slurm.conf"), put("/etc/slurm/cgroup.conf")]
if HEAD:
    systemd.service(name="Restart slurmctld", service="slurmctld", restarted=True,
                    _if=any_changed(*slurm_files))  # fmt: skip
    systemd.service(name="slurmctld running", service="slurmctld", running=True, enabled=True)
else:
    # A logout must not remove the shared memory of running jobs (RemoveIPC=no).
    logind = put("/etc/systemd/logind.conf.d/piherd-slurm.conf")
    systemd.service(name="Restart logind", service="systemd-logind", restarted=True,
                    _if=logind.did_change)  # fmt: skip
    cgroup_files = [
        put("/usr/local/lib/piherd/cgroup-v1-mount", mode="755"),
        put("/etc/systemd/system/piherd-cgroup-v1.service"),
    ]
    systemd.daemon_reload(name="Reload systemd (cgroup unit)", _if=any_changed(*cgroup_files))
    systemd.service(name="Restart cgroup v1 mounts", service="piherd-cgroup-v1", restarted=True,
                    _if=any_changed(*cgroup_files))  # fmt: skip
    systemd.service(name="cgroup v1 mounts", service="piherd-cgroup-v1", running=True, enabled=True)
    systemd.service(name="Restart slurmd", service="slurmd", restarted=True,
                    _if=any_changed(*slurm_files))  # fmt: skip
    systemd.service(name="slurmd running", service="slurmd", running=True, enabled=True)

# --- MPI host files -------------------------------------------------------------------
for path in ("/etc/openmpi/openmpi-default-hostfile", "/etc/openmpi/openmpi-mca-params.conf",
             "/etc/piherd/hosts.openmpi"):  # fmt: skip
    put(path)
