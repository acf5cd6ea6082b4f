"""Power control of nodes: one driver module per kind of controller, and their registry."""
