"""The power log: one JSON line per action, with who did it and why.

Default place: $PIHERD_POWER_LOG, else $XDG_STATE_HOME/piherd/power.log, else
~/.local/state/piherd/power.log; the file is private (0600) and only ever appended to.
"""

from __future__ import annotations

import datetime
import fcntl
import getpass
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def default_log_path(env: Mapping[str, str] | None = None) -> Path:
    """Where power actions are logged."""
    env = os.environ if env is None else env
    if env.get("PIHERD_POWER_LOG"):
        return Path(env["PIHERD_POWER_LOG"]).expanduser()
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "piherd" / "power.log"


def who(env: Mapping[str, str] | None = None) -> str:
    """The user acting: the login name, and the sudo caller when run through sudo."""
    env = os.environ if env is None else env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    caller = env.get("SUDO_USER", "")
    return f"{caller} (as {user})" if caller and caller != user else user


def record(path: Path, entry: Mapping[str, Any]) -> None:
    """Append `entry` (with the time) as one JSON line to `path` (created 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = {"time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")}
    line.update(entry)
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, data)
    finally:
        os.close(fd)


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every entry of the log (none when it does not exist)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]
