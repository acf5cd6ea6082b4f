"""`discover --assign`: names for new Pis in the order they are powered on.

For cards written with one generic image, a Pi's name is only known from when it came
up: the user powers them on one at a time, and each round of the sweep that sees exactly
one unnamed Pi gives it the next free name. When more than one unnamed Pi is up, none is
guessed at: they are reported, and named once only one of them is up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Assigner:
    """Hands out `names` (nodes with no MAC yet, in order) to MACs seen one at a time."""

    names: list[str]
    given: dict[str, str] = field(default_factory=dict)  # MAC -> name
    refused: set[str] = field(default_factory=set)  # MACs that are not the cluster's cards

    def round(self, new_macs: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """One sweep's unnamed Pis: ({MAC: name} given now, MACs left unnamed because
        more than one is up: power all but one off, or on one at a time)."""
        fresh = [
            m for m in dict.fromkeys(new_macs) if m not in self.given and m not in self.refused
        ]
        if len(fresh) == 1 and self.names:
            self.given[fresh[0]] = self.names.pop(0)
            return {fresh[0]: self.given[fresh[0]]}, []
        return {}, fresh if len(fresh) > 1 else []

    def refuse(self, mac: str) -> None:
        """Undo the name given to `mac` (it did not prove to be one of the cluster's
        cards): the name is the next one handed out, and `mac` is never named again."""
        self.names.insert(0, self.given.pop(mac))
        self.refused.add(mac)
