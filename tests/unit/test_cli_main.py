"""The lazy command table: every entry imports, names match, help lists them all."""

from __future__ import annotations

import importlib
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from click.testing import CliRunner

from piherd.cli.main import COMMANDS, cli


def test_every_command_module_defines_the_named_command() -> None:
    for name, (module, short_help) in COMMANDS.items():
        command = importlib.import_module(module).command
        assert isinstance(command, click.Command)
        assert command.name == name, f"{module} defines {command.name!r}, table says {name!r}"
        assert short_help.endswith(".")


def test_help_lists_every_command_and_each_sub_help_works() -> None:
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in top.output
        sub = runner.invoke(cli, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "Usage:" in sub.output


def test_check_does_not_import_the_ssh_stack() -> None:
    code = (
        "import sys; from piherd.cli.main import cli\n"
        "try:\n    cli(['check', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('asyncssh' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_inventory_ansible_matches_groups_ansible(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "cluster.toml"
    runner = CliRunner()
    inventory = runner.invoke(cli, ["inventory", "--ansible", "-f", str(example)])
    groups = runner.invoke(cli, ["groups", "--ansible", "-f", str(example)])
    assert inventory.exit_code == 0, inventory.output
    assert inventory.output == groups.output
    assert "[workers]" in inventory.output
    assert runner.invoke(cli, ["inventory", "-f", str(example)]).exit_code == 2


def on_a_terminal(
    argv: list[str], cwd: Path, answer: bytes | signal.Signals, wait_for: bytes
) -> tuple[int, str]:
    """Run argv on a pseudo-terminal (script(1)); once `wait_for` shows, type `answer`
    or send it (a signal) to the program."""
    proc = subprocess.Popen(
        ["script", "-qec", shlex.join(argv), "/dev/null"], cwd=cwd,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    screen = b""
    while wait_for not in screen:
        chunk = os.read(proc.stdout.fileno(), 1024)
        assert chunk, f"ended before {wait_for!r}: {screen!r}"
        screen += chunk
    program = _descendant(proc.pid, argv[0])

    def send() -> None:
        if isinstance(answer, bytes):
            assert proc.stdin is not None
            proc.stdin.write(answer)
            proc.stdin.flush()
        else:
            os.kill(program, answer)

    send()
    # Read to the end before closing stdin: script(1) turns its stdin's end into a Ctrl-D
    # on the terminal, which could reach the prompt before the Ctrl-C's signal does.
    # A signal can be lost by CPython's input() itself: one arriving after its last
    # check and before it blocks in select() waits for the next key (2 runs in 24 under
    # load). A user presses Ctrl-C again; so does this, every 5 s, at most 5 times.
    deadline = time.monotonic() + 30
    while True:
        wait = max(0.0, min(5.0, deadline - time.monotonic()))
        if not select.select([proc.stdout], [], [], wait)[0]:
            assert time.monotonic() < deadline, f"still running: {screen!r}"
            if answer != b"\x04":
                send()
            continue
        chunk = os.read(proc.stdout.fileno(), 1024)
        if not chunk:
            break
        screen += chunk
    proc.stdin.close()
    return proc.wait(timeout=30), screen.decode(errors="replace")


def test_ctrl_c_exits_130_end_of_input_1(tmp_path: Path) -> None:
    """`piherd init` asks on a terminal: Ctrl-C exits 130 (click alone gives 1), while
    end of input (Ctrl-D) stays "Aborted!" and 1; nothing is written either way."""
    piherd = str(Path(sys.executable).parent / "piherd")
    rc, screen = on_a_terminal([piherd, "init"], tmp_path, b"\x03", b"--nodes")
    assert (rc, screen.splitlines()[-1].strip()) == (130, "piherd: interrupted"), screen
    rc, screen = on_a_terminal([piherd, "init"], tmp_path, b"\x04", b"--nodes")
    assert (rc, "Aborted!" in screen) == (1, True), screen
    assert list(tmp_path.iterdir()) == []


def _descendant(pid: int, program: str) -> int:
    """The process under `pid` (script(1), maybe a shell) that runs `program`."""
    waiting = [pid]
    while waiting:
        parent = waiting.pop()
        for child in map(int, Path(f"/proc/{parent}/task/{parent}/children").read_text().split()):
            # An element equal to it: not a shell (`sh -c "PROGRAM ARGS"`) that runs it.
            if program.encode() in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                return child
            waiting.append(child)
    raise LookupError(program)


def test_sigterm_takes_ctrl_cs_path_from_the_start(tmp_path: Path) -> None:
    """SIGTERM (systemd, timeout(1)) exits 130 like Ctrl-C even where no remote work runs
    yet, here at `piherd init`'s first question."""
    piherd = str(Path(sys.executable).parent / "piherd")
    rc, screen = on_a_terminal([piherd, "init"], tmp_path, signal.SIGTERM, b"--nodes")
    assert (rc, screen.splitlines()[-1].strip()) == (130, "piherd: interrupted"), screen
    assert list(tmp_path.iterdir()) == []
