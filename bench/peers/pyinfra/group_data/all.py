"""Connection and cluster data shared by every host (from $PEERS_INVENTORY)."""

import json
import os

_spec = json.loads(open(os.environ["PEERS_INVENTORY"]).read())  # noqa: SIM115

ssh_user = _spec["data"]["ssh_user"]
ssh_key = _spec["data"]["ssh_key"]
ssh_known_hosts_file = _spec["data"]["ssh_known_hosts_file"]
ssh_strict_host_key_checking = "yes"
render_dir = _spec["data"]["render_dir"]
cluster_interface = _spec["data"]["cluster_interface"]
