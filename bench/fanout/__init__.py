"""Fan-out benchmark: piherd run beside clush, pdsh, parallel-ssh, ansible, bare asyncssh."""
