"""Desired state vs facts -> a plan of changes, each with its reason and diff."""
