"""The head's packages."""

cluster_packages = [
    "chrony", "libopenmpi-dev", "libpmix-dev", "munge", "openmpi-bin", "python3-mpi4py",
    "slurm-client", "slurmctld",
]  # fmt: skip
