"""piherd itself as one executable zip file, for the head's `piherd watch` service.

The head runs it with Debian's python3 and Debian's python3-* packages (no PyPI, no
venv): `/usr/local/bin/piherd watch ...`. The bytes depend only on piherd's source, so
a second `piherd up` finds the file unchanged and restarts nothing.

Not `zipapp.create_archive`: it stores each file's mtime (a fresh checkout would give a
different file, and a service restart, on every machine) and takes __pycache__ along.
"""

from __future__ import annotations

import io
import zipfile
from importlib import resources
from importlib.resources.abc import Traversable

from piherd.model import Cluster
from piherd.power.settings import PowerSettings

INTERPRETER = "/usr/bin/python3"
# Debian 12's asyncssh imports ciphers its python3-cryptography calls deprecated: one
# warning per cipher on every start would fill the service's log.
_MAIN = b"""import sys
import warnings

warnings.filterwarnings("ignore", message=".* has been deprecated", module="asyncssh")

from piherd.cli.main import main

sys.exit(main())
"""
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def _files(folder: Traversable, prefix: str) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for entry in folder.iterdir():
        name = f"{prefix}/{entry.name}"
        if entry.is_dir():
            if entry.name != "__pycache__":
                found += _files(entry, name)
        elif not entry.name.endswith((".pyc", ".pyo")):
            found.append((name, entry.read_bytes()))
    return found


def build_bundle() -> bytes:
    """The running piherd package as `#!/usr/bin/python3` + a deterministic zip."""
    entries = sorted(_files(resources.files("piherd"), "piherd"))
    entries.append(("__main__.py", _MAIN))
    buffer = io.BytesIO()
    buffer.write(f"#!{INTERPRETER}\n".encode())
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def watch_service_inputs(cluster: Cluster) -> tuple[bytes, str]:
    """(the bundle, cluster.toml's text) for the head's watch service and Slurm power
    saving; empty when both are off."""
    power = cluster.services.find(PowerSettings)
    saving = power is not None and power.enabled and power.slurm_suspend  # power_saving.py
    if not (cluster.health.watch_enabled or saving) or cluster.source is None:
        return b"", ""
    return build_bundle(), cluster.source.read_text(encoding="utf-8")
