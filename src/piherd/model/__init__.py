"""The cluster as data: load and validate cluster.toml, naming plan, node sets and groups."""

from piherd.model.cluster import Cluster, Node
from piherd.model.load import load, loads
from piherd.model.nodesets import NodeSetError, expand, fold
from piherd.model.problems import ConfigError, Problem

__all__ = [
    "Cluster",
    "ConfigError",
    "Node",
    "NodeSetError",
    "Problem",
    "expand",
    "fold",
    "load",
    "loads",
]
