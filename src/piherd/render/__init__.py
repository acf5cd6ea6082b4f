"""Pure renderers: (cluster, node) -> the exact files the node must hold; no I/O."""
