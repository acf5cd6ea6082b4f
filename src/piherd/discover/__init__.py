"""Finding the cluster's machines on the LAN: a sweep, the neighbour table, matching to nodes."""
