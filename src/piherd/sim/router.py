"""The home router and package mirror of a virtual cluster, both on its bridge only.

dnsmasq hands out DHCP leases from the router pool (fixed MAC -> address, so bootstrap
addresses are known up front) with no default route and no DNS server: nothing leaves
the machine. apt-cacher-ng, bound to the bridge address, plays the upstream mirror;
its cache is shared by all sim clusters and kept between runs.
"""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from piherd.sim.names import CACHE_ROOT
from piherd.sim.proc import SimError, alive, launch, read_pid, stop_daemon
from piherd.sim.state_file import SimState

ACNG_CACHE = CACHE_ROOT / "apt-cacher-ng"
ACNG_PORT = 3142
UPSTREAM = "http://deb.debian.org/debian/"
ACNG_CONF = Path("/etc/apt-cacher-ng")


def _router_dir(state: SimState) -> Path:
    return Path(state.state_dir) / "router"


def dhcp_hosts(state: SimState) -> str:
    """dnsmasq dhcp-hostsfile: each node's MAC gets its fixed lease."""
    names = state.names
    return "".join(
        f"{names.mac(i)},{names.dhcp_address(i)},{node}\n"
        for i, node in enumerate(state.node_names())
    )


async def _dnsmasq(state: SimState, router: Path) -> None:
    hosts = router / "dhcp-hosts"
    hosts.write_text(dhcp_hosts(state))
    pid = read_pid(router / "dnsmasq.child")
    if alive(pid):
        assert pid is not None
        os.kill(pid, signal.SIGHUP)  # re-read the hosts file after a resize
        return
    names = state.names
    low, high = names.pool()
    argv = [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
        f"--interface={names.bridge}", "--bind-interfaces", "--except-interface=lo",
        f"--dhcp-range={low},{high},{names.subnet.netmask},12h",
        f"--dhcp-hostsfile={hosts}", f"--dhcp-leasefile={router / 'leases'}",
        "--dhcp-option=option:router", "--dhcp-option=option:dns-server",
        "--domain=sim.lan", "--dhcp-authoritative", "--user=root", "--group=root",
        "--pid-file=",
    ]  # fmt: skip
    await launch(
        argv,
        pidfile=router / "dnsmasq.pid",
        childfile=router / "dnsmasq.child",
        log=router / "dnsmasq.log",
    )


def _acng_conf(router: Path) -> Path:
    conf = router / "acng-conf"
    if not conf.exists():
        shutil.copytree(ACNG_CONF, conf)
    # The package's default backend (ftp.debian.org) does not resolve here.
    (conf / "backends_debian").write_text(UPSTREAM + "\n")
    return conf


async def _apt_cacher(state: SimState, router: Path) -> None:
    if alive(read_pid(router / "acng.child")):
        return
    with (CACHE_ROOT / "apt-cacher-ng.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # first use creates the shared cache dir
        ACNG_CACHE.mkdir(parents=True, exist_ok=True)
    _check_port_free(str(state.names.gateway), ACNG_PORT)
    logs = router / "acng-log"
    logs.mkdir(exist_ok=True)
    argv = [
        "apt-cacher-ng", "-c", str(_acng_conf(router)), "ForeGround=1",
        f"BindAddress={state.names.gateway}", f"Port={ACNG_PORT}",
        f"CacheDir={ACNG_CACHE}", f"LogDir={logs}", f"PidFile={router / 'acng.pidfile'}",
        f"SocketPath={router / 'acng.socket'}", "ExThreshold=365",
    ]  # fmt: skip
    await launch(
        argv, pidfile=router / "acng.pid", childfile=router / "acng.child", log=logs / "stdout"
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(str(state.names.gateway), ACNG_PORT)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise SimError(f"apt-cacher-ng did not listen on {state.names.gateway}:{ACNG_PORT}")


def _check_port_free(address: str, port: int) -> None:
    """Fail clearly when something (e.g. the distribution's apt-cacher-ng service on
    *:3142) already holds the port: nodes would reach it instead of the sim's cache."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise SimError(
                f"port {port} on {address} is taken ({exc.strerror}); is the system's "
                "apt-cacher-ng service running? stop it: systemctl disable --now apt-cacher-ng"
            ) from None


async def router_up(state: SimState) -> None:
    """Start (or refresh) the cluster's DHCP server and package cache."""
    router = _router_dir(state)
    router.mkdir(parents=True, exist_ok=True)
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    await _dnsmasq(state, router)
    await _apt_cacher(state, router)


async def router_down(state: SimState) -> None:
    router = _router_dir(state)
    await stop_daemon(router / "dnsmasq.pid", router / "dnsmasq.child")
    await stop_daemon(router / "acng.pid", router / "acng.child")
