"""`piherd init`: write a commented, valid cluster.toml from flags or, on a terminal, answers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import Any, TypeVar

import click

from piherd.cli.common import fail
from piherd.model import ConfigError, fold
from piherd.model.cluster import OS_RELEASES
from piherd.model.naming import MAX_START
from piherd.model.template import Answers, cluster_toml, default_first
from piherd.model.writefile import replace_text
from piherd.services import SERVICES, loads

T = TypeVar("T")

# Which flag sets each field, so a bad value is reported as the flag the user typed.
_FLAGS = {
    "naming.count": "--nodes",
    "naming.prefix": "--prefix",
    "naming.width": "--width",
    "naming.start": "--start",
    "naming.first_address": "--first",
    "naming.head": "--head",
    "network.subnet": "--subnet",
    "network.gateway": "--gateway",
    "network.router_dhcp_pool": "--router-pool",
    "network.dns": "--dns",
    "cluster.name": "--name",
    "cluster.domain": "--domain",
    "cluster.admin_user": "--admin-user",
    "cluster.os": "--os",
    **{f.field: f.flag for s in SERVICES for f in s.init_flags if f.field},
}


def _convert(kind: Callable[[str], T], what: str) -> Callable[[Any], T | None]:
    def convert(value: Any) -> T | None:
        if value is None or value == "":
            return None
        try:
            return kind(str(value).strip())
        except ValueError as exc:
            raise click.BadParameter(f"{value!r} is not {what}: {exc}") from None

    return convert


def _ipv4(text: str) -> IPv4Address:
    value = ip_address(text)
    if not isinstance(value, IPv4Address):
        raise ValueError("piherd plans IPv4 LANs")
    return value


def _subnet(text: str) -> IPv4Network:
    value = ip_network(text, strict=True)
    if not isinstance(value, IPv4Network):
        raise ValueError("piherd plans IPv4 LANs")
    return value


def _range(text: str) -> tuple[IPv4Address, IPv4Address]:
    low, sep, high = text.partition("-")
    if not sep:
        raise ValueError('write it "A-B", e.g. 192.168.1.100-192.168.1.199')
    first = _ipv4(low.strip())
    last = high.strip()
    if "." not in last:  # "192.168.1.100-199": the last octet only
        last = f"{str(first).rsplit('.', 1)[0]}.{last}"
    return first, _ipv4(last)


def _macs(values: tuple[str, ...]) -> dict[str, str]:
    macs = {}
    for value in values:
        name, sep, mac = value.partition("=")
        if not sep or not name or not mac:
            raise click.BadParameter(f"{value!r}: write NODE=MAC, e.g. node02=dc:a6:32:01:02:03")
        macs[name.strip()] = mac.strip().lower()
    return macs


def _ask(value: T | None, prompt: str, convert: Callable[[Any], T | None], default: Any) -> T:
    """`value`, or the user's answer when it is missing and stdin is a terminal."""
    if value is not None:
        return value
    if not sys.stdin.isatty():
        flag = prompt.split(" (")[0]
        fail(f"piherd init: {flag} is missing; give it as a flag (see piherd init --help)")
    while True:
        answer = convert(click.prompt(prompt, default=default))
        if answer is not None:
            return answer


def _service_options(command: Callable[..., None]) -> Callable[..., None]:
    """The questions each service asks (Service.init_flags), as click options."""
    for flag in reversed([f for s in SERVICES for f in s.init_flags]):
        kind = click.Choice(flag.choices) if flag.choices else None
        option = click.option(
            flag.flag,
            flag.dest,
            is_flag=flag.is_flag,
            multiple=flag.multiple,
            type=kind,
            default=flag.default,
            show_default=flag.default is not None,
            help=flag.help,
        )
        command = option(command)
    return command


def _service_answers(flags: dict[str, Any]) -> dict[str, object]:
    """The services' answers by InitFlag.dest, ranges parsed."""
    answers: dict[str, object] = {}
    for flag in (f for s in SERVICES for f in s.init_flags):
        value = flags.get(flag.dest)
        if flag.is_range:
            value = _convert(_range, "a range")(value)
        elif flag.multiple:
            value = tuple(value or ())
        answers[flag.dest] = value
    return answers


@click.command("init")
@click.argument(
    "path", required=False, default="cluster.toml", type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--nodes", type=click.IntRange(1, 10_000), help="Number of nodes, head included.")
@click.option("--prefix", default="node", show_default=True, help="Node name prefix.")
@click.option("--width", type=click.IntRange(1, 6), help="Digits of the index [default: 2].")
@click.option(
    "--start", type=click.IntRange(0, MAX_START), default=1, show_default=True, help="First index."
)
@click.option("--subnet", help="The LAN, e.g. 192.168.1.0/24.")
@click.option("--first", help="Address of the first node [default: .11 of the subnet].")
@click.option("--gateway", help="The router [default: .1 of the subnet].")
@click.option("--dns", multiple=True, help="Name server (repeat) [default: the gateway].")
@click.option("--router-pool", help="The router's DHCP pool A-B, kept free of nodes.")
@click.option("--head", default="", help="Name of the head [default: the first node].")
@click.option("--name", default="picluster", show_default=True, help="Cluster name.")
@click.option("--domain", default="cluster.lan", show_default=True, help="DNS domain.")
@click.option("--admin-user", default="pi", show_default=True, help="User piherd logs in as.")
@click.option("--os", "os_release", type=click.Choice(OS_RELEASES), default="bookworm")
@click.option("--ssh-key", default="~/.ssh/id_ed25519.pub", show_default=True, help="Public key.")
@click.option("--mac", "macs", multiple=True, help="NODE=MAC for a DHCP reservation (repeat).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@_service_options
def command(path: Path, **flags: Any) -> None:
    """Write a commented, valid cluster.toml (default ./cluster.toml).

    Missing --nodes/--subnet are asked for on a terminal. Example (the seed's
    cluster01..04 on 192.168.1.128-131):

    \b
      piherd init --nodes 4 --prefix cluster --subnet 192.168.1.0/24 \\
          --first 192.168.1.128 --router-pool 192.168.1.9-108
    """
    if path.exists() and not flags["force"]:
        fail(f"piherd init: {path} exists; nothing written (use --force to overwrite it)")
    try:
        answers = _answers(flags)
    except click.BadParameter as exc:
        fail(f"piherd init: {exc.format_message()}")
    text = cluster_toml(answers, SERVICES)
    try:
        cluster = loads(text, str(path))
    except ConfigError as exc:
        lines = [
            f"  {_FLAGS.get(p.field, p.field)}: {p.message}" + (f" ({p.hint})" if p.hint else "")
            for p in exc.problems
        ]
        fail(
            "piherd init: these values do not make a valid cluster; nothing written\n"
            + "\n".join(lines)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_text(path, text, mode=0o644)
    click.echo(
        f"wrote {path}: cluster {cluster.name!r}, {len(cluster.nodes)} nodes "
        f"({fold(n.name for n in cluster.nodes)}) on {cluster.nodes[0].address}-"
        f"{cluster.nodes[-1].address}, head {cluster.head.name}\n"
        f"next: read it, then `piherd check {path}` and `piherd up`"
    )


def _answers(flags: dict[str, Any]) -> Answers:
    nodes = _ask(
        flags["nodes"], "--nodes (how many nodes, head included)", _convert(int, "a number"), 4
    )
    subnet = _ask(
        _convert(_subnet, "a network")(flags["subnet"]),
        "--subnet (the LAN, network/prefix)",
        _convert(_subnet, "a network"),
        "192.168.1.0/24",
    )
    pool = _convert(_range, "a range")(flags["router_pool"])
    first = _convert(_ipv4, "an IPv4 address")(flags["first"]) or default_first(subnet, nodes, pool)
    width = flags["width"] or max(2, len(str(flags["start"] + nodes - 1)))
    return Answers(
        nodes=nodes,
        subnet=subnet,
        first=first,
        prefix=flags["prefix"],
        width=width,
        start=flags["start"],
        head=flags["head"],
        gateway=_convert(_ipv4, "an IPv4 address")(flags["gateway"]),
        dns=tuple(a for d in flags["dns"] if (a := _convert(_ipv4, "an IPv4 address")(d))),
        router_pool=pool,
        name=flags["name"],
        domain=flags["domain"],
        admin_user=flags["admin_user"],
        os=flags["os_release"],
        ssh_key=flags["ssh_key"],
        macs=_macs(flags["macs"]),
        options=_service_answers(flags),
    )
