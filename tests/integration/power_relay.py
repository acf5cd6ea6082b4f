"""A virtual node's power lead, for the power tests: what a BMC or a PoE switch would switch.

Real daemons call it: OpenIPMI's `ipmi_sim` as its chassis_control program, net-snmp's
`snmpd` as a pass_persist script serving RFC 3621 pethPsePortAdminEnable. It switches the
sim node's power (`VirtualCluster.power_on` / `kill`) and reads it back (`powered`).

    power_relay.py ipmi SIM NODE get power | set power 0|1
    power_relay.py snmp SIM NODE1,NODE2,...     (port 1 = NODE1, ...; group 1)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import TextIO

from piherd.sim.virtual_cluster import VirtualCluster

ADMIN_ENABLE = ".1.3.6.1.2.1.105.1.1.1.3.1"


def _set(sim: str, node: str, on: bool) -> None:
    """Off at once; on in a process of its own, so the daemon answers at once, as a switch
    or a BMC does (booting the node takes a while on a busy machine)."""
    if on:
        argv = [sys.executable, __file__, "power-on", sim, node]
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        return
    vc = VirtualCluster.attach(sim)
    if vc.powered(node):
        asyncio.run(vc.kill(node))


def _powered(sim: str, node: str) -> bool:
    return VirtualCluster.attach(sim).powered(node)


def ipmi(sim: str, node: str, words: list[str]) -> int:
    """ipmi_sim's chassis_control protocol: `get power` -> `power:1`; `set power 1`."""
    if words[:1] == ["get"]:
        for parm in words[1:]:
            if parm == "power":
                print(f"power:{int(_powered(sim, node))}")
        return 0
    if words[:1] == ["set"]:
        pairs = words[1:]
        for parm, value in zip(pairs[::2], pairs[1::2], strict=True):
            if parm == "power":
                _set(sim, node, value == "1")
        return 0
    print(f"unknown request {words}")
    return 1


def _oids(nodes: list[str]) -> list[str]:
    return [f"{ADMIN_ENABLE}.{port}" for port in range(1, len(nodes) + 1)]


def _key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.strip(".").split("."))


def snmp(sim: str, nodes: list[str]) -> int:
    """snmpd's pass_persist protocol over stdin/stdout."""
    oids = _oids(nodes)

    def node_of(oid: str) -> str | None:
        return nodes[oids.index(oid)] if oid in oids else None

    def answer(oid: str) -> None:
        node = node_of(oid)
        print(f"{oid}\ninteger\n{1 if node and _powered(sim, node) else 2}")

    while True:
        command = sys.stdin.readline().strip()
        if not command:
            return 0
        if command == "PING":
            print("PONG")
        elif command == "get":
            oid = sys.stdin.readline().strip()
            answer(oid) if node_of(oid) else print("NONE")
        elif command == "getnext":
            oid = sys.stdin.readline().strip()
            following = [o for o in oids if _key(o) > _key(oid)]
            answer(following[0]) if following else print("NONE")
        elif command == "set":
            oid = sys.stdin.readline().strip()
            kind, _, value = sys.stdin.readline().strip().partition(" ")
            node = node_of(oid)
            if node is None:
                print("not-writable")
            elif kind != "integer" or value not in ("1", "2"):
                print("wrong-value")
            else:
                _set(sim, node, value == "1")
                print("DONE")
        else:
            print("NONE")
        sys.stdout.flush()


def _private_stdio() -> tuple[TextIO, TextIO]:
    """The daemon's pipes, kept on private descriptors; 0 and 1 become /dev/null, so the
    node processes a power-on starts cannot hold or write to the daemon's pipes."""
    proto_in = os.fdopen(os.dup(0), "r")
    proto_out = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return proto_in, proto_out


def main(argv: list[str]) -> int:
    kind, sim = argv[0], argv[1]
    if kind == "power-on":
        asyncio.run(VirtualCluster.attach(sim).power_on(argv[2]))
        return 0
    sys.stdin, sys.stdout = _private_stdio()
    if kind == "ipmi":
        return ipmi(sim, argv[2], argv[3:])
    return snmp(sim, argv[2].split(","))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
