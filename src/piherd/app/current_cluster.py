"""The current cluster: which cluster.toml a command reads when it is given none.

Order: `-f FILE`, then `$PIHERD_CLUSTER`, then `./cluster.toml` when it exists, then the
current-cluster setting, a file holding one absolute path
(`$XDG_CONFIG_HOME/piherd/current`, default `~/.config/piherd/current`) that `piherd sim
up` and `piherd use` write. `sim` subcommands map the same choice to a virtual cluster's
name and refuse to guess when several run and none is chosen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from piherd.sim.names import NAME_RE, STATE_ROOT
from piherd.sim.state_file import STATE_FILE

CURRENT_FILE = "current"
DEFAULT_FILE = Path("cluster.toml")
MAX_PATH = 4096  # PATH_MAX: a longer "path" in the setting is not one


class CurrentError(ValueError):
    """The setting or a choice of cluster is unusable; the message says how to fix it."""


@dataclass(frozen=True)
class Choice:
    """A cluster file and where the choice came from (`-f`, `$PIHERD_CLUSTER`, ...)."""

    path: Path
    source: str

    @property
    def implicit(self) -> bool:
        """True when the file came from the current-cluster setting (worth saying so)."""
        return self.source == "current"


def setting_path(env: Mapping[str, str]) -> Path:
    """Where the current-cluster setting lives for the user whose environment is `env`."""
    base = env.get("XDG_CONFIG_HOME", "")
    if base and Path(base).is_absolute():  # the XDG spec: a relative value is ignored
        root = Path(base)
    else:
        root = Path(env.get("HOME") or os.path.expanduser("~")) / ".config"
    return root / "piherd" / CURRENT_FILE


def _checked(text: str, origin: str) -> Path:
    """`text` as an absolute, normalised path; CurrentError naming `origin` otherwise."""
    if not text or len(text) > MAX_PATH or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise CurrentError(f"{origin}: not a path (empty, too long or control characters)")
    path = Path(text)
    if not path.is_absolute():
        raise CurrentError(f"{origin}: {text!r} is not an absolute path")
    return Path(os.path.normpath(path))


def read_setting(env: Mapping[str, str]) -> Path | None:
    """The current cluster file, or None when none is set."""
    where = setting_path(env)
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CurrentError(f"{where}: cannot read the current-cluster setting: {exc}") from None
    return _checked(text.removesuffix("\n"), str(where))


def write_setting(env: Mapping[str, str], cluster_file: Path) -> Path:
    """Make `cluster_file` the current cluster (atomic rename); returns the setting's path."""
    target = _checked(str(cluster_file.absolute()), "cluster file")
    where = setting_path(env)
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.with_name(f".{CURRENT_FILE}.{os.getpid()}.tmp")
    try:
        tmp.write_text(f"{target}\n", encoding="utf-8")
        tmp.replace(where)
    finally:
        tmp.unlink(missing_ok=True)
    return where


def clear_setting(env: Mapping[str, str], only_if: Path | None = None) -> bool:
    """Remove the setting (only when it names `only_if`, if given); True when removed."""
    try:
        current = read_setting(env)
    except CurrentError:
        current = None
    if current is None or (only_if is not None and current != Path(os.path.normpath(only_if))):
        return False
    setting_path(env).unlink(missing_ok=True)
    return True


def choose(explicit: Path | None, env: Mapping[str, str], cwd: Path) -> Choice:
    """The cluster file a command reads: -f, $PIHERD_CLUSTER, ./cluster.toml, the setting."""
    if explicit is not None:
        return Choice(explicit, "-f")
    if env.get("PIHERD_CLUSTER"):
        return Choice(Path(env["PIHERD_CLUSTER"]), "$PIHERD_CLUSTER")
    if (cwd / DEFAULT_FILE).exists():
        return Choice(DEFAULT_FILE, "./cluster.toml")
    current = read_setting(env)
    if current is not None:
        return Choice(current, "current")
    return Choice(DEFAULT_FILE, "./cluster.toml")


def sim_cluster_file(name: str, state_root: Path = STATE_ROOT) -> Path:
    """The cluster.toml `piherd sim up --name NAME` writes."""
    return state_root / name / "cluster.toml"


def sim_names(state_root: Path = STATE_ROOT) -> list[str]:
    """Names of the virtual clusters on this machine (a state dir with its state file)."""
    try:
        entries = sorted(state_root.iterdir())
    except OSError:
        return []
    return [e.name for e in entries if NAME_RE.fullmatch(e.name) and (e / STATE_FILE).exists()]


def sim_name_of(path: Path, state_root: Path = STATE_ROOT) -> str | None:
    """The virtual cluster whose state dir holds `path`, or None."""
    path = Path(os.path.normpath(path.absolute()))
    if path.parent.parent != state_root or path.name != "cluster.toml":
        return None
    name = path.parent.name
    return name if NAME_RE.fullmatch(name) else None


def resolve_cluster_ref(ref: str, state_root: Path = STATE_ROOT) -> Path:
    """`piherd use REF`: a virtual cluster's name or a path to a cluster file."""
    if NAME_RE.fullmatch(ref) and not Path(ref).exists():
        file = sim_cluster_file(ref, state_root)
        if not file.is_file():
            known = ", ".join(sim_names(state_root)) or "none"
            raise CurrentError(f"no virtual cluster named {ref!r} (running: {known})")
        return file
    path = _checked(str(Path(ref).absolute()), "piherd use")
    if not path.is_file():
        raise CurrentError(f"{ref}: no such file")
    return path


def choose_sim(
    explicit: str | None,
    env: Mapping[str, str],
    state_root: Path = STATE_ROOT,
    only_one: bool = True,
) -> tuple[str | None, str]:
    """The virtual cluster a `sim` subcommand acts on, and why; (None, why) when it cannot
    tell: several clusters run and neither --name, $PIHERD_CLUSTER nor the setting names one.
    With `only_one` false (`sim up`, which creates), a lone running cluster is not taken.
    """
    if explicit is not None:
        return explicit, "--name"
    for source, text in (("$PIHERD_CLUSTER", env.get("PIHERD_CLUSTER", "")), ("current", "")):
        if source == "current":
            current = read_setting(env)
            text = str(current) if current is not None else ""
        if text:
            name = sim_name_of(Path(text), state_root)
            if name is not None and name in sim_names(state_root):
                return name, source
    running = sim_names(state_root)
    if len(running) == 1 and only_one:
        return running[0], "the only one running"
    if not running or not only_one:
        return None, "none chosen" if running else "none running"
    return None, "several running: " + ", ".join(running)
