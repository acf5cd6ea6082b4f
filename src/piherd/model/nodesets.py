"""Node-set expressions (`node[02-04]`, `@workers!node03`) over a cluster's groups.

A thin adapter over ClusterShell's NodeSet: we pass it our own group source
explicitly (never its global resolver) and add the checks it does not make:
unknown groups and names that are not nodes of the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence, Set

from ClusterShell.NodeSet import NodeSet, NodeSetBase, NodeSetParseError
from ClusterShell.NodeUtils import GroupResolver, GroupSource
from ClusterShell.RangeSet import RangeSet

from piherd.model.escape import shown

_GROUP_REF = re.compile(r"@([A-Za-z0-9_.\-]+)")
# At most this many names in one node set, counted before anything is expanded: beyond
# any real cluster (naming.MAX_NODES), and ClusterShell takes seconds per million names.
MAX_EXPANSION = 10_000
MAX_WORK = 4 * MAX_EXPANSION  # names of all terms together (`@all!node01` counts 10,001)
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_RANGE = re.compile(r"\s*(\d+)(?:\s*-\s*(\d+)(?:\s*/\s*(\d+))?)?\s*")
_TERMS = re.compile(r"[,!&^](?![^\[]*\])")  # operators outside brackets
_LONG_NUMBER = re.compile(r"\d{19}")
_NAME = r"@?[A-Za-z0-9_.\-]+"
_PLAIN_SET = re.compile(rf"{_NAME}(?:[,!&^]{_NAME})*")  # names and groups, no ranges
_OPERATOR = re.compile(r"([,!&^])")
_OPERATORS = (",", "!", "&", "^")
# A name with one run of digits (`node0042`, `rpi3`): folded by its number alone.
_ONE_INDEX = re.compile(r"([A-Za-z_.\-]*)(\d+)([A-Za-z_.\-]*)")


class NodeSetError(ValueError):
    """A node-set expression that is malformed or names unknown groups or nodes."""


def _resolver(groups: Mapping[str, Iterable[str]], expression: str) -> GroupResolver:
    """A resolver of the groups `expression` names (all of them for `@*`), nothing more."""
    named = groups if "@*" in expression else {g: groups[g] for g in _GROUP_REF.findall(expression)}
    source = GroupSource("piherd", {g: ",".join(members) for g, members in named.items()})
    return GroupResolver(source)


def _bracket_size(body: str) -> int:
    total = 0
    for part in body.split(","):
        match = _RANGE.fullmatch(part)
        if match:  # anything else is ClusterShell's to report
            low, high = int(match[1]), int(match[2] or match[1])
            total += max(high - low, 0) // max(int(match[3] or 1), 1) + 1
    return max(total, 1)


def size_bound(expression: str, groups: Mapping[str, Sequence[str]]) -> int:
    """At least as many names as `expression` makes ClusterShell build, counted without
    building them: a term's ranges multiply (`a[1-9]b[1-9]`: 81), terms and groups add."""
    total = 0
    for term in _TERMS.split(expression):
        term = term.strip()
        if term.startswith("@"):
            name = term[1:]
            total += sum(map(len, groups.values())) if name == "*" else len(groups.get(name, ()))
            continue
        size = 1
        for body in _BRACKET.findall(term):
            size *= _bracket_size(body)
        if size > MAX_EXPANSION:
            raise NodeSetError(
                f"{shown(term)} names up to {size} nodes; at most {MAX_EXPANSION} are allowed"
            )
        total += size
    return total


def expand(
    expression: str,
    groups: Mapping[str, Sequence[str]],
    known: Iterable[str] | None = None,
) -> list[str]:
    """Node names of `expression`, in natural order; NodeSetError when it is not usable."""
    unknown = sorted({g for g in _GROUP_REF.findall(expression) if g not in groups})
    if unknown:
        raise NodeSetError(
            f"unknown group{'s' if len(unknown) > 1 else ''} {', '.join('@' + g for g in unknown)}"
        )
    if _LONG_NUMBER.search(expression):
        raise NodeSetError(f"node set {shown(expression)} holds a number of 19 digits or more")
    bound = size_bound(expression, groups)
    if bound > MAX_WORK:
        raise NodeSetError(
            f"node set {shown(expression)} names up to {bound} nodes; "
            f"at most {MAX_WORK} names in all may be counted"
        )
    try:
        names = list(NodeSet(expression, resolver=_resolver(groups, expression)))
    except NodeSetParseError as exc:
        raise NodeSetError(f"cannot parse node set {shown(expression)}: {exc}") from exc
    if known is not None:
        known_set = known if isinstance(known, Set) else set(known)
        strangers = [n for n in names if n not in known_set]
        if strangers:
            raise NodeSetError(f"not a node of this cluster: {fold(strangers)}")
    return names


def members(expression: str, groups: Mapping[str, Sequence[str]], known: Set[str]) -> set[str]:
    """The node names of `expression`, as a set; NodeSetError as `expand` raises it.

    Expressions of plain names and groups (`@rack1,@rack2!node03`) are evaluated here
    with sets, left to right as ClusterShell does, so checking a thousand groups of a
    10,000-node cluster takes a second, not minutes; anything else goes to `expand`.
    """
    if not _PLAIN_SET.fullmatch(expression):
        return set(expand(expression, groups, known))
    unknown = sorted({g for g in _GROUP_REF.findall(expression) if g not in groups})
    if unknown:
        return set(expand(expression, groups, known))  # its error names them
    if size_bound(expression, groups) > MAX_WORK:
        expand(expression, groups, known)  # raises, naming the bound
    found: set[str] = set()
    operator = ","
    for token in _OPERATOR.split(expression):
        if token in _OPERATORS:
            operator = token
            continue
        names = set(groups[token[1:]]) if token.startswith("@") else {token}
        found = _combine(operator, found, names)
    strangers = found - known
    if strangers:
        raise NodeSetError(f"not a node of this cluster: {fold(strangers)}")
    return found


def _combine(operator: str, left: set[str], right: set[str]) -> set[str]:
    if operator == "!":
        return left - right
    if operator == "&":
        return left & right
    return left ^ right if operator == "^" else left | right


def fold(names: Iterable[str]) -> str:
    """The shortest node-set text for `names` (`node[01-03,05]`), as ClusterShell folds it.

    NodeSet.fromlist parses every name as a node-set expression (~70 us each: 0.7 s for
    10,000 names); names with one run of digits are grouped here by the text around it
    and handed to ClusterShell as one RangeSet per group (~5 us each), the rest as before.
    """
    by_pattern: dict[tuple[str, str], list[str]] = {}
    others: list[str] = []
    for name in names:
        match = _ONE_INDEX.fullmatch(name)
        if match:
            by_pattern.setdefault((match[1], match[3]), []).append(match[2])
        else:
            others.append(name)
    folded = NodeSet.fromlist(others)
    for (before, after), numbers in by_pattern.items():
        folded.update(NodeSetBase(f"{before}%s{after}", RangeSet.fromlist(numbers)))
    return str(folded)
