"""The registry of power drivers, by the name cluster.toml gives them."""

from __future__ import annotations

from piherd.power.base import Driver
from piherd.power.clusterhat import ClusterHatDriver
from piherd.power.command import CommandDriver
from piherd.power.ipmi import IpmiDriver
from piherd.power.poe_snmp import PoeSnmpDriver
from piherd.power.turingpi import TuringPiDriver
from piherd.power.virtual import SimDriver
from piherd.power.wake import SshWolDriver


def driver(name: str) -> Driver:
    """A new driver of kind `name` (KeyError for an unknown one; the loader refuses those)."""
    kinds: dict[str, type[Driver]] = {
        "ipmi": IpmiDriver,
        "poe-snmp": PoeSnmpDriver,
        "clusterhat": ClusterHatDriver,
        "turingpi": TuringPiDriver,
        "command": CommandDriver,
        "ssh": SshWolDriver,
        "sim": SimDriver,
    }
    return kinds[name]()
