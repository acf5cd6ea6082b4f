"""The workers' packages."""

cluster_packages = [
    "chrony", "munge", "openmpi-bin", "python3-mpi4py", "slurm-client", "slurmd", "sshfs",
]  # fmt: skip
