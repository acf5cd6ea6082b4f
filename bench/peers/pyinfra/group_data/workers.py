"""The workers' packages."""

cluster_packages = [
    "chrony", "libpmix-dev", "munge", "openmpi-bin", "python3-mpi4py", "slurm-client", "slurmd",
    "sshfs",
]  # fmt: skip
