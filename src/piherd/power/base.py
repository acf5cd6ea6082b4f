"""What every power driver shares: its interface, its context, running argv with a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from piherd.power.settings import Target

PowerState = Literal["on", "off", "unknown"]
SECRETS_SUBDIR = "power"  # secrets_dir/power/<name>: the controllers' passwords and keys
MAX_OUTPUT = 64 * 1024
_SECRET_TEXT = re.compile(r"[\x21-\x7e]{1,256}")  # one printable word, no space or '#'

# Runs argv on a node over SSH as root; (rc, stdout, stderr), rc None when unreachable.
NodeRunner = Callable[[str, Sequence[str]], Awaitable[tuple[int | None, str, str]]]


class PowerError(RuntimeError):
    """A power action failed; the message names the node and why (never a secret)."""


@dataclass(frozen=True)
class DriverContext:
    """What drivers may use besides their target: secrets, timeouts, SSH to nodes."""

    secrets_dir: Path
    timeout: float = 30.0
    run_on_node: NodeRunner | None = None
    ssh_config: Path | None = None
    known_hosts: Path | None = None
    ssh_identity: Path | None = None
    broadcast: str = "255.255.255.255"  # the cluster subnet's, for Wake-on-LAN
    ssh_port: int = 22

    def secret_path(self, name: str) -> Path:
        """Where the secret `name` lives; PowerError when it is missing or not private."""
        path = self.secrets_dir / SECRETS_SUBDIR / name
        try:
            mode = path.stat().st_mode
        except OSError:
            raise PowerError(
                f"the power secret {name!r} is missing: write it to {path} (mode 0600)"
            ) from None
        if mode & 0o077:
            os.chmod(path, 0o600)  # like the cluster's other secrets: tightened, never loosened
        return path

    def secret_words(self, name: str) -> list[str]:
        """The secret's lines (a password, a community, v3 passphrases), each one word."""
        path = self.secret_path(name)
        try:
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise PowerError(f"cannot read the power secret {name!r}: {exc}") from None
        if not lines or not all(_SECRET_TEXT.fullmatch(line) for line in lines):
            raise PowerError(
                f"the power secret {name!r} ({path}) must hold one word per line "
                "(printable, no spaces)"
            )
        return lines


class Driver:
    """A kind of power controller. Subclasses implement on, off and status."""

    name = ""

    async def on(self, target: Target, ctx: DriverContext) -> None:
        raise NotImplementedError

    async def off(self, target: Target, ctx: DriverContext) -> None:
        raise NotImplementedError

    async def status(self, target: Target, ctx: DriverContext) -> PowerState:
        raise NotImplementedError


async def run_argv(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    what: str = "",
) -> tuple[int, str, str]:
    """Run argv (no shell); (rc, stdout, stderr). PowerError when it cannot run or times out."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env} if env else None,
            start_new_session=True,
        )
    except OSError as exc:
        raise PowerError(f"{what or argv[0]}: cannot run {argv[0]}: {exc.strerror}") from None
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        raise PowerError(f"{what or argv[0]}: no answer within {timeout:g} s") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return process.returncode or 0, _text(out), _text(err)


def _text(data: bytes) -> str:
    return data[:MAX_OUTPUT].decode("utf-8", "replace")


def first_line(text: str) -> str:
    """The first non-empty line of `text` (for error messages), at most 200 characters."""
    return next((line.strip()[:200] for line in text.splitlines() if line.strip()), "")
