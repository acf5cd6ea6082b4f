"""What one card must give its node at first boot, checked as a whole before any writer runs.

A `FirstBoot` is built from the cluster and a node (or, for `--generic`, from the cluster
alone); every value in it has passed a full-match check here, so the per-release writers
(`firstrun`, `cloudinit`, `userconf`) can place them in scripts and YAML without surprises.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass

from piherd.model import Cluster, Node
from piherd.model.escape import has_unsafe_char, shown
from piherd.model.specs import FileSpec
from piherd.services import static_address

HOSTNAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
DOMAIN = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
PUBLIC_KEY = re.compile(
    r"(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com"
    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}(?: [!-~][ -~]{0,200})?"
)
TIMEZONE = re.compile(r"[A-Za-z0-9_+-]{1,40}(?:/[A-Za-z0-9_+-]{1,40}){0,3}")
ADDRESS = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}")
INTERFACE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}")
PRIVATE_KEY = re.compile(
    r"-----BEGIN OPENSSH PRIVATE KEY-----\n(?:[A-Za-z0-9+/=]{1,80}\n)+"
    r"-----END OPENSSH PRIVATE KEY-----\n"
)


class FirstBootError(ValueError):
    """A value that must not reach a first-boot file (names what and why)."""


@dataclass(frozen=True, repr=False)
class HostKey:
    """One SSH host key pair of a node (`kind` is ed25519 or ecdsa). repr() hides it."""

    kind: str
    private: bytes
    public: str

    def __repr__(self) -> str:
        return f"HostKey({self.kind}, <hidden>)"


@dataclass(frozen=True)
class StaticAddress:
    """The node's final address, for cloud-init's netplan and the network-stack file."""

    interface: str
    address: str  # "a.b.c.d/prefix"
    gateway: str | None
    dns: tuple[str, ...]
    search: str
    stack_file: FileSpec  # what `up` renders for the node's stack (services/static_address.py)


@dataclass(frozen=True, repr=False)
class FirstBoot:
    """Everything one node's first boot sets up. `hostname` None: keep the image's (generic)."""

    cluster: str
    label: str  # the node's name, or "generic"
    hostname: str | None
    domain: str
    user: str
    admin_key: str
    timezone: str
    host_keys: tuple[HostKey, ...]
    static: StaticAddress | None
    instance_id: str

    def __repr__(self) -> str:
        return f"FirstBoot({self.label}, <hidden>)"


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if has_unsafe_char(value) or not pattern.fullmatch(value):
        raise FirstBootError(f"{what} {shown(value)} cannot go into a first-boot file")
    return value


def check_timezone(value: str) -> str:
    """`value` when it names a time zone this machine knows (tzdata), else FirstBootError."""
    _check(TIMEZONE, value, "time zone")
    if value not in zoneinfo.available_timezones():
        raise FirstBootError(f"unknown time zone {shown(value)} (e.g. Europe/London, Etc/UTC)")
    return value


def check_public_key(value: str) -> str:
    """One OpenSSH public key line, or FirstBootError."""
    return _check(PUBLIC_KEY, value, "public key")


def check_host_key(key: HostKey) -> HostKey:
    """A host key whose private half is an OpenSSH PEM block and public half one key line."""
    try:
        pem = key.private.decode("ascii")
    except UnicodeDecodeError:
        raise FirstBootError(f"{key.kind} host key is not an OpenSSH private key") from None
    if not PRIVATE_KEY.fullmatch(pem):
        raise FirstBootError(f"{key.kind} host key is not an OpenSSH private key")
    check_public_key(key.public)
    return key


def _static(cluster: Cluster, node: Node) -> StaticAddress:
    spec = static_address.render(cluster, node)
    (stack_file,) = spec.values()
    network = cluster.network
    return StaticAddress(
        interface=_check(INTERFACE, node.interface, "interface"),
        address=f"{_check(ADDRESS, str(node.address), 'address')}/{network.subnet.prefixlen}",
        gateway=str(network.gateway) if network.gateway else None,
        dns=tuple(str(a) for a in static_address.dns_servers(cluster, node)),
        search=_check(DOMAIN, cluster.domain, "domain") if cluster.domain else "",
        stack_file=stack_file,
    )


def for_node(
    cluster: Cluster,
    node: Node | None,
    admin_key: str,
    timezone: str,
    host_keys: tuple[HostKey, ...],
    instance_id: str,
) -> FirstBoot:
    """The checked first-boot settings of `node` (None: a generic image, DHCP, no name)."""
    return FirstBoot(
        cluster=_check(HOSTNAME, cluster.name, "cluster name"),
        label=node.name if node else "generic",
        hostname=_check(HOSTNAME, node.name, "host name") if node else None,
        domain=_check(DOMAIN, cluster.domain, "domain") if cluster.domain else "",
        user=_check(USER, cluster.admin_user, "admin user"),
        admin_key=check_public_key(admin_key),
        timezone=check_timezone(timezone),
        host_keys=tuple(check_host_key(k) for k in host_keys),
        static=_static(cluster, node) if node else None,
        instance_id=_check(re.compile(r"[a-z0-9-]{1,80}"), instance_id, "instance id"),
    )
