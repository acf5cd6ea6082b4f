"""Node-set expressions (`node[02-04]`, `@workers!node03`) over a cluster's groups.

A thin adapter over ClusterShell's NodeSet: we pass it our own group source
explicitly (never its global resolver) and add the checks it does not make:
unknown groups and names that are not nodes of the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ClusterShell.NodeSet import NodeSet, NodeSetParseError
from ClusterShell.NodeUtils import GroupResolver, GroupSource

_GROUP_REF = re.compile(r"@([A-Za-z0-9_.\-]+)")


class NodeSetError(ValueError):
    """A node-set expression that is malformed or names unknown groups or nodes."""


def _resolver(groups: Mapping[str, Iterable[str]]) -> GroupResolver:
    source = GroupSource("piherd", {g: ",".join(members) for g, members in groups.items()})
    return GroupResolver(source)


def expand(
    expression: str,
    groups: Mapping[str, Iterable[str]],
    known: Iterable[str] | None = None,
) -> list[str]:
    """Node names of `expression`, in natural order; NodeSetError when it is not usable."""
    unknown = sorted({g for g in _GROUP_REF.findall(expression) if g not in groups})
    if unknown:
        raise NodeSetError(
            f"unknown group{'s' if len(unknown) > 1 else ''} {', '.join('@' + g for g in unknown)}"
        )
    try:
        names = list(NodeSet(expression, resolver=_resolver(groups)))
    except NodeSetParseError as exc:
        raise NodeSetError(f"cannot parse node set {expression!r}: {exc}") from exc
    if known is not None:
        known_set = set(known)
        strangers = [n for n in names if n not in known_set]
        if strangers:
            raise NodeSetError(f"not a node of this cluster: {fold(strangers)}")
    return names


def fold(names: Iterable[str]) -> str:
    """The shortest node-set text for `names` (`node[01-03,05]`)."""
    return str(NodeSet.fromlist(list(names)))
