"""Where each node's values came from in the file, so problems point at the right line."""

from __future__ import annotations

from dataclasses import dataclass

# Values a node inherits when its [[nodes]] entry does not set them: where they live.
_INHERITED = {
    "os": "cluster.os",
    "interface": "cluster.interface",
    "network_stack": "cluster.network_stack",
    "role": "naming.head",
    "compute": "services.slurm.head_computes",
}
_PLANNED = {"name": "naming.prefix", "address": "naming.first_address"}


@dataclass(frozen=True)
class Origin:
    """A node's source: the naming plan, a [[nodes]] entry, or both (an override)."""

    path: str  # "naming" for a planned node not listed in [[nodes]], else "nodes[i]"
    own: frozenset[str] = frozenset()  # keys its [[nodes]] entry sets
    planned: bool = False  # the naming plan made it

    def field(self, key: str) -> str:
        """Dotted path of the place in the file that gave this node its `key`."""
        if key in self.own:
            return f"{self.path}.{key}"
        if self.planned and key in _PLANNED:
            return _PLANNED[key]
        if key in _INHERITED:
            return _INHERITED[key]
        return f"{self.path}.{key}"
