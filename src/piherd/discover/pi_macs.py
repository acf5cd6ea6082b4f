"""Which MAC addresses are Raspberry Pis: the IEEE OUIs of Raspberry Pi Ltd and of the
Raspberry Pi Foundation, plus any prefixes the cluster adds (network.pi_mac_prefixes)."""

from __future__ import annotations

from collections.abc import Iterable

# b8:27:eb: the Foundation (Pi 1-3); the others: Raspberry Pi Trading / Ltd (Pi 4, 400,
# CM4, Pi 5, CM5). A board whose network chip is not Raspberry Pi's own (a USB adapter,
# a third-party carrier) has another vendor's prefix: add it in cluster.toml.
PI_OUIS: tuple[str, ...] = (
    "28:cd:c1",
    "2c:cf:67",
    "88:a2:9e",
    "b8:27:eb",
    "d8:3a:dd",
    "dc:a6:32",
    "e4:5f:01",
)


def is_pi(mac: str, extra: Iterable[str] = ()) -> bool:
    """Whether `mac` (any case, colon-separated) starts with a Pi prefix."""
    mac = mac.lower()
    return any(mac.startswith(prefix) for prefix in (*PI_OUIS, *extra))
