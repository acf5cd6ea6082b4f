"""pyinfra inventory of the sim cluster: the head and the workers.

The benchmark writes the hosts to the JSON file named by $PEERS_INVENTORY:
{"data": {...}, "head": [[name, {...}]], "workers": [[name, {...}], ...]}, each host with
its `ssh_hostname` (the address it answers at now) and `static_address`.
"""

import json
import os

_spec = json.loads(open(os.environ["PEERS_INVENTORY"]).read())  # noqa: SIM115

head = [(name, data) for name, data in _spec["head"]]
workers = [(name, data) for name, data in _spec["workers"]]
