"""Health probes, rules, the watch loop, and Slurm drain/resume."""
