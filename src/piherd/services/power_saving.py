"""Slurm power saving ([services.power] slurm_suspend): what the head needs for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from piherd.model import Cluster, Node
    from piherd.model.reader import Reader
    from piherd.model.specs import FileSpec, RenderContext
    from piherd.power.settings import PowerSettings


def check_saving(cluster: Cluster, settings: PowerSettings, reader: Reader) -> None:
    """Problems of slurm_suspend."""
    del cluster, settings, reader


def saving_files(cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
    """The head's suspend and resume programs, piherd and its power secrets."""
    del cluster, node, ctx
    return []


def saving_packages(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """Debian packages the head's power drivers need."""
    del cluster, node
    return ()
