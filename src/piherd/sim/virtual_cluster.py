"""VirtualCluster: bring a virtual Pi cluster up, operate it, take it down.

    async with VirtualCluster("tsim", workers=2) as vc:
        cluster = piherd.services.load(vc.cluster_file)
        await vc.kill("node02"); await vc.revive("node02")

Light nodes live in light.py, full (systemd) nodes in full.py; this module wires the
network, keys and files around them and keeps the shape on disk (state_file.py) so
`VirtualCluster.attach(name)` works from another process.
"""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator
from ipaddress import IPv4Network
from pathlib import Path
from types import TracebackType
from typing import Any

from piherd.sim import bridge, full, keys, light, pisys
from piherd.sim import state_file as simstate
from piherd.sim import vm as vm_nodes
from piherd.sim.card import boot_partition_files
from piherd.sim.clusterfile import (
    SimFiles,
    SimNode,
    render_cluster,
    render_known_hosts,
    render_ssh_config,
)
from piherd.sim.image import RELEASES
from piherd.sim.leftovers import leftovers
from piherd.sim.names import FIRST_HOST, POOL, STATE_ROOT, check_name, node_width, pick_subnet
from piherd.sim.proc import SimError, alive, file_lock, read_pid
from piherd.sim.state_file import SimState
from piherd.transport.banner import ssh_answers

MAX_FULL_WORKERS = POOL[1] - POOL[0]  # one lease per node in .100-.199
PARALLEL = 8  # node starts at a time: the machine has 2 cores shared with others


class VirtualCluster:
    """A head and `workers` workers on this machine; constructing it does no I/O."""

    def __init__(
        self,
        name: str,
        workers: int = 2,
        *,
        light: bool = False,
        blank: bool = False,
        release: str = "bookworm",
        vm: bool = False,
        netboot: bool = False,
        state_root: Path = STATE_ROOT,
        subnet: str | None = None,
        out: Path | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.name = check_name(name)
        if blank and light:
            raise ValueError("blank nodes are full nodes (a stock card boots systemd): not --light")
        if vm and (light or blank or release != "bookworm"):
            raise ValueError("VM nodes are full bookworm nodes: not --light, --blank or trixie")
        if netboot and not vm:
            raise ValueError("netbooted nodes are VM nodes (--vm): a container has no boot")
        if workers < 0:
            raise ValueError(f"workers must be 0 or more, not {workers}")
        if not light and workers > MAX_FULL_WORKERS:
            raise ValueError(
                f"at most {MAX_FULL_WORKERS} full workers (the router's DHCP pool); "
                "use light nodes for more"
            )
        self.state_dir = state_dir or state_root / name
        net = IPv4Network(subnet) if subnet else pick_subnet(name, workers + 1)
        if release not in RELEASES or (light and release != "bookworm"):
            raise ValueError(f"full nodes run {' or '.join(RELEASES)}; light nodes the host's")
        self.state = SimState(
            name, light, workers, str(net), str(self.state_dir), blank, release, vm, netboot
        )
        self.out = out

    # ----- lifecycle -------------------------------------------------------------

    @classmethod
    def attach(cls, name: str, state_root: Path = STATE_ROOT) -> VirtualCluster:
        """Operate a cluster another process brought up; SimError when there is none."""
        found = simstate.load(state_root / check_name(name))
        if found is None:
            raise SimError(f"no sim cluster {name!r} (nothing in {state_root / name})")
        vc = cls(
            name, found.workers, light=found.light, blank=found.blank, release=found.release,
            vm=found.vm, netboot=found.netboot, subnet=found.subnet,
        )  # fmt: skip
        vc.state_dir = Path(found.state_dir)
        vc.state = found
        return vc

    async def __aenter__(self) -> VirtualCluster:
        try:
            await self.up()
        except BaseException:
            await self.down()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.down()

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)
        async with file_lock(self.state_dir / "lock", poll=0.2):
            yield

    @property
    def cluster_file(self) -> Path:
        return self.state_dir / "cluster.toml"

    @property
    def files(self) -> SimFiles:
        key = self.state_dir / "id_ed25519"
        return SimFiles(
            key, key.with_name("id_ed25519.pub"), self.state_dir / "ssh_config",
            self.state_dir / "known_hosts",
        )  # fmt: skip

    def node_names(self) -> list[str]:
        return self.state.node_names()

    async def up(self, timeout: float = 300.0) -> Path:
        """Bring every node up (completing a half-up cluster); the cluster.toml path."""
        async with self._locked():
            previous = simstate.load(self.state_dir)
            if previous is not None:
                was = (previous.light, previous.blank, previous.release, previous.vm,
                       previous.netboot)  # fmt: skip
                wanted = (self.state.light, self.state.blank, self.state.release, self.state.vm,
                          self.state.netboot)  # fmt: skip
                if was != wanted:
                    raise SimError(
                        f"sim cluster {self.name!r} is already up with {_kind(previous)} nodes"
                    )
                self.state = SimState(
                    self.name, previous.light, self.state.workers, previous.subnet,
                    str(self.state_dir), previous.blank, previous.release, previous.vm,
                    previous.netboot,
                )  # fmt: skip
                _check_resize(previous, self.state)
                for node in previous.node_names()[self.state.count :]:
                    await self._remove_node(previous, node)
            simstate.save(self.state)
            if self.state.vm:
                vm_nodes.check_host()
            await self._prepare()
            names = self.state.names
            await bridge.bridge_up(names)
            if not self.state.light:
                await full.router_up(self.state)
            await bridge.nodes_up(names, [self._link(n) for n in self.node_names()])
            gate = asyncio.Semaphore(PARALLEL * (4 if self.state.light else 1))

            async def boot(node: str) -> None:
                async with gate:
                    await self._start(node)

            await asyncio.gather(*(boot(n) for n in self.node_names() if not self._running(n)))
            self._write_files()
            if not self.state.blank:  # a stock card runs no sshd
                # A netbooted node boots once the head serves it (`piherd netboot build`).
                disked = [n for n in self.node_names() if not self.state.netbooted(n)]
                await self.wait_reachable(disked, timeout=timeout)
            return self.cluster_file

    async def down(self) -> None:
        """Stop every node and remove everything named after the cluster."""
        async with self._locked():
            found = simstate.load(self.state_dir) or self.state
            # Power cuts are cheap: all at once (light clusters: 64 at a time).
            gate = asyncio.Semaphore(64)

            async def cut(node: str) -> None:
                async with gate:
                    await self._stop(found, node, power_cut=True)

            async def remove(node: str) -> None:
                async with gate:
                    await self._remove_node(found, node)

            nodes = found.node_names()
            await asyncio.gather(*(cut(n) for n in nodes))
            await bridge.nodes_down(found.names, [(found.index(n), n) for n in nodes])
            await asyncio.gather(*(remove(n) for n in nodes))
            if not found.light:
                await full.router_down(found)
            await bridge.bridge_down(found.names)
            await full.cgroups_remove(found.names, None)
        left = leftovers(self.name, self.state_dir.parent)
        if left:
            raise SimError(f"sim {self.name!r} left behind: " + "; ".join(left))
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # ----- nodes -------------------------------------------------------------------

    def _link(self, node: str) -> bridge.NodeLink:
        index, names = self.state.index(node), self.state.names
        address = names.address(index) if self.state.light else None
        ifname = "eth0" if self.state.light or self.state.vm else "host0"
        return bridge.NodeLink(index, node, ifname, names.mac(index), address)

    def _running(self, node: str) -> bool:
        node_dir = self.state.node_dir(node)
        if self.state.vm:
            return vm_nodes.running(node_dir)
        return light.running(node_dir) if self.state.light else full.running(node_dir)

    async def _prepare(self) -> None:
        files = self.files
        await keys.ensure_user_key(files.private_key, f"piherd-sim-{self.name}")
        auth = self.state_dir / "authorized_keys"
        auth.write_text(files.public_key.read_text())
        auth.chmod(0o644)
        if not self.state.blank:  # a blank node's host keys come from its image
            await keys.ensure_many_host_keys(
                {n: self.state.node_dir(n) / "ssh" for n in self.node_names()}
            )
        for node in self.node_names():
            index = self.state.index(node)
            if self.state.light:
                address = str(self.state.names.address(index))
                light.prepare(self.state.node_dir(node), address, auth)

    async def _start(self, node: str, asked: float = 0.0) -> None:
        """Boot `node`; `asked`: when its power-on was asked for (CLOCK_BOOTTIME), 0 when
        nobody waits for it (its uptime must not predate the request: pisys)."""
        node_dir = self.state.node_dir(node)
        await bridge.nic_on(self.state.names, self._link(node))  # after a power cut
        if self.state.light:
            await light.start(node_dir, node, self.state.names.netns(node), asked)
        elif self.state.vm:
            await vm_nodes.start(self.state, node, self.files)
        else:
            await bridge.forget_addresses(self.state.names, node, "host0")
            await full.start(self.state, node, self.files, asked)

    async def _stop(self, state: SimState, node: str, *, power_cut: bool = False) -> None:
        node_dir = state.node_dir(node)
        if state.light:
            await light.stop(node_dir, power_cut=power_cut)
        elif state.vm:
            await vm_nodes.stop(node_dir)
        else:
            await full.stop(state, node, power_cut=power_cut)

    async def _remove_node(self, state: SimState, node: str) -> None:
        await self._stop(state, node)
        index = state.index(node)
        static = state.names.address(index) if state.light else None
        await bridge.node_down(state.names, index, node, static)
        if not state.light and not state.vm:
            await full.cgroups_remove(state.names, node)
        shutil.rmtree(state.node_dir(node), ignore_errors=True)

    def sim_nodes(self) -> list[SimNode]:
        names, nodes = self.state.names, []
        for node in self.node_names():
            index = self.state.index(node)
            address = str(names.address(index))
            reach = address if self.state.light else str(names.dhcp_address(index))
            ssh_dir = self.state.node_dir(node) / "ssh"
            host_keys = () if self.state.blank else tuple(keys.public_keys(ssh_dir))
            serial = ""
            if self.state.netbooted(node):
                # The kernel sets its address from the first; its keys come from piherd.
                reach, host_keys, serial = address, (), vm_nodes.serial_of(index)
            nodes.append(SimNode(index, node, address, reach, host_keys, names.mac(index), serial))
        return nodes

    def _write_files(self) -> None:
        nodes, files = self.sim_nodes(), self.files
        user = "root" if self.state.light else "pi"
        if self.state.blank:
            # Nodes are reached at their cluster.toml addresses, and known_hosts holds what
            # `piherd image` recorded: never overwritten.
            files.ssh_config.write_text(render_ssh_config([], files, user))
            files.known_hosts.touch()
        else:
            files.ssh_config.write_text(render_ssh_config(nodes, files, user))
            files.known_hosts.write_text(render_known_hosts(nodes))
        text = render_cluster(
            self.state.names, nodes, files, light=self.state.light, blank=self.state.blank,
            release=self.state.release, vm=self.state.vm, netboot=self.state.netboot,
        )  # fmt: skip
        for path in (self.cluster_file, *([self.out] if self.out else [])):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    async def wait_reachable(self, nodes: list[str] | None = None, timeout: float = 180.0) -> None:
        """Wait until each node's sshd answers with an SSH banner; SimError naming the rest.

        A node answers at its DHCP lease until `piherd up` moves it to its static
        address, and only there afterwards: either counts.
        """
        addresses = {n.name: {n.reach, n.address} for n in self.sim_nodes()}
        pending = set(nodes or self.node_names())
        deadline = time.monotonic() + timeout
        while pending:
            results = await asyncio.gather(
                *(_any_ssh_banner(addresses[n]) for n in sorted(pending))
            )
            pending -= {n for n, ok in zip(sorted(pending), results, strict=True) if ok}
            if pending and time.monotonic() > deadline:
                raise SimError(f"not reachable over SSH after {timeout:.0f}s: {sorted(pending)}")
            if pending:
                await asyncio.sleep(0.3)

    # ----- operations (named after what they do to a real Pi) --------------------------

    async def kill(self, node: str) -> None:
        """Power cut: SIGKILL the node; its NIC goes dark with it (nothing answers)."""
        await self._stop(self.state, self._check(node), power_cut=True)
        await bridge.nic_off(self.state.names, self._link(node))

    async def revive(self, node: str, timeout: float = 120.0) -> None:
        """Power on again: boot the node, wait for sshd (a blank node's first boot and the
        reboot after it get twice the time; a stock card that runs no sshd is not waited for)."""
        await self.power_on(node)
        if self.state.blank:
            if not full.card_runs_sshd(self.state.node_dir(node)):
                return
            timeout *= 2
        await self.wait_reachable([node], timeout=timeout)

    async def boot_after_reboot(self, node: str) -> None:
        """The node's container exited asking for a reboot: boot it again (sim.reboot)."""
        node_dir = self.state.node_dir(self._check(node))
        if full.leader(node_dir) is not None:
            raise SimError(f"{node} is running already")
        await self._start(node, time.clock_gettime(time.CLOCK_BOOTTIME))

    async def flash(self, node: str, image: Path) -> list[str]:
        """Write `image` onto a powered-off blank node's card: its boot partition's files
        replace the card's, and its root is the stock one again (the image's own root is
        not one a container can boot). The files copied."""
        self._check(node)
        if not self.state.blank:
            raise SimError(f"sim {self.name!r} has no blank nodes: `sim up --blank` makes them")
        if self._running(node):
            raise SimError(f"{node} is powered on: `piherd sim kill {node}` first")
        node_dir = self.state.node_dir(node)
        staged = node_dir / "bootfs.flashing"
        shutil.rmtree(staged, ignore_errors=True)
        copied = await asyncio.to_thread(boot_partition_files, image, staged)
        full.wipe(self.state, node)
        staged.rename(node_dir / "bootfs")
        return copied

    async def power_on(self, node: str) -> None:
        """Power on without waiting for the node to boot (a no-op when it runs)."""
        if not self._running(self._check(node)):
            asked = time.clock_gettime(time.CLOCK_BOOTTIME)
            pisys.seed(self.state.node_dir(node) / "pi")  # a reboot clears the sticky bits
            await self._start(node, asked)

    def powered(self, node: str) -> bool:
        """Whether the node has power (its container or namespace runs)."""
        return self._running(self._check(node))

    async def partition(self, node: str) -> None:
        """Pull the node's network cable (its switch port goes down)."""
        await bridge.set_cable(self.state.names, self.state.index(self._check(node)), False)

    async def heal(self, node: str) -> None:
        """Plug the cable back in."""
        await bridge.set_cable(self.state.names, self.state.index(self._check(node)), True)

    async def reset(self, node: str, timeout: float = 120.0) -> None:
        """Re-flash the card: stop, wipe the overlay, same identity, boot (a blank node
        gets the stock card back, which runs no sshd: not waited for)."""
        self._check(node)
        await self._stop(self.state, node)
        if self.state.vm:
            vm_nodes.wipe(self.state.node_dir(node))
        elif not self.state.light:
            full.wipe(self.state, node)
        await self._start(node)
        if not self.state.blank:
            await self.wait_reachable([node], timeout=timeout)

    def inject(self, node: str, kind: str) -> None:
        """Pi signals: undervoltage, overtemp or clear."""
        if self.state.vm:
            raise ValueError("VM nodes have their own kernel's /sys: no Pi signals to inject")
        pisys.inject(self.state.node_dir(self._check(node)) / "pi", kind)

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for sim_node in self.sim_nodes():
            node_dir = self.state.node_dir(sim_node.name)
            rows.append(
                {
                    "node": sim_node.name,
                    "address": sim_node.reach,
                    "running": self._running(sim_node.name),
                    "cable": bridge.cable_plugged(self.state.names, sim_node.index),
                    # A VM has its own kernel's /sys, without the Pi's signals.
                    **({} if self.state.vm else pisys.read_signals(node_dir / "pi")),
                }
            )
        return rows

    def shell_argv(self, node: str) -> list[str]:
        """argv of a root login shell inside the node's namespaces (no SSH involved)."""
        node_dir = self.state.node_dir(self._check(node))
        if self.state.light:
            pid = read_pid(node_dir / "child.pid")
            if not alive(pid):
                raise SimError(f"{node} is powered off")
            return ["nsenter", "-t", str(pid), "-n", "-u", "-m", "-T", "--", "/bin/bash", "-l"]
        if self.state.vm:  # a machine of its own: entered as the admin does, over SSH
            found = next(n for n in self.sim_nodes() if n.name == node)
            address = first_answering([found.address, found.reach])  # after `up`, or before
            return [
                "ssh", "-F", str(self.files.ssh_config), "-o", f"HostName={address}", "-t",
                node, "sudo", "-i",
            ]  # fmt: skip
        return full.shell_argv(self.state, node)

    def console_log(self, node: str) -> Path:
        node_dir = self.state.node_dir(self._check(node))
        return node_dir / (vm_nodes.CONSOLE if self.state.vm else "node.log")

    def _check(self, node: str) -> str:
        self.state.index(node)
        return node


def _kind(state: SimState) -> str:
    kind = "light" if state.light else "blank" if state.blank else "vm" if state.vm else "full"
    return kind if state.light else f"{kind} {state.release}"


def first_answering(addresses: list[str], port: int = 22, timeout: float = 1.0) -> str:
    """The first address whose `port` accepts a connection, else the last one."""
    for address in addresses[:-1]:
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return address
        except OSError:
            continue
    return addresses[-1]


async def _any_ssh_banner(addresses: set[str]) -> bool:
    results = await asyncio.gather(*(ssh_answers(a, timeout=2.0) for a in sorted(addresses)))
    return any(results)


def _check_resize(previous: SimState, wanted: SimState) -> None:
    """A running cluster grows or shrinks in place only if its nodes keep their names and
    every address fits its subnet; otherwise it has to be brought down first."""
    subnet = IPv4Network(previous.subnet)
    last = subnet.network_address + FIRST_HOST + wanted.count - 1
    renamed = node_width(previous.count) != node_width(wanted.count)
    if renamed or last not in subnet or last == subnet.broadcast_address:
        why = "renames every node" if renamed else f"does not fit its subnet {subnet}"
        raise SimError(
            f"sim {previous.name!r} runs {previous.count} nodes; {wanted.count} {why}: "
            f"run `piherd sim down --name {previous.name}` first, then `sim up` again"
        )
