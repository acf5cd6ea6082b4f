"""Converge benchmark: `piherd up` beside an Ansible playbook and a pyinfra deploy (issue 18)."""
