"""One contract for every Transport backend: LocalTransport and SshTransport (real sshd).

The SSH backends talk to a real OpenSSH server started for this module on 127.0.0.1 at a
free port, with its own host key and authorized_keys (root: sshd needs it). "ssh-sudo"
forces the `sudo -n --` wrapper even as root so the sudo path is exercised for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from piherd.transport import remote_scripts
from piherd.transport.base import Transport, TransportError
from piherd.transport.local import LocalTransport
from piherd.transport.loopback import LoopbackSshd, free_port, keygen
from piherd.transport.ssh import SshTransport

T = TypeVar("T")


def arun(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ssh_transport(sshd: LoopbackSshd, tmp: Path, **kw: Any) -> SshTransport:
    host = kw.pop("host", "127.0.0.1")
    options: dict[str, Any] = {
        "port": sshd.port,
        "username": "root",
        "known_hosts": tmp / "known_hosts",
        "ssh_config": None,
        "client_keys": [sshd.client_key],
        "connect_timeout": 5.0,
    }
    options.update(kw)
    return SshTransport("node01", host, **options)


BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("ssh", id="ssh", marks=pytest.mark.root),
    pytest.param("ssh-sudo", id="ssh-sudo", marks=pytest.mark.root),
]


@pytest.fixture(params=BACKENDS)
def make_transport(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Transport]:
    kind = request.param
    if kind == "local":
        return lambda: LocalTransport("node01")
    server = request.getfixturevalue("sshd")
    return lambda: ssh_transport(server, tmp_path, use_sudo=(kind == "ssh-sudo"))


async def _with(make: Callable[[], Transport], body: Callable[[Transport], Awaitable[T]]) -> T:
    transport = make()
    await transport.connect()
    try:
        return await body(transport)
    finally:
        await transport.close()


def test_run_reports_rc_stdout_stderr_apart(make_transport: Callable[[], Transport]) -> None:
    argv = ["sh", "-c", "echo out; echo err >&2; exit 3"]
    result = arun(lambda: _with(make_transport, lambda t: t.run(argv)))
    assert (result.node, result.rc, result.stdout, result.stderr) == ("node01", 3, "out\n", "err\n")
    assert result.error is None and not result.ok and result.elapsed > 0


def test_arguments_arrive_verbatim(make_transport: Callable[[], Transport]) -> None:
    tricky = ["a b", "it's", '"q"', "$HOME", "; rm -rf /", "*"]
    result = arun(lambda: _with(make_transport, lambda t: t.run(["printf", "%s\\n", *tricky])))
    assert result.stdout.splitlines() == tricky


def test_stdin_is_fed(make_transport: Callable[[], Transport]) -> None:
    data = b"line one\nline two\n" * 1000
    result = arun(lambda: _with(make_transport, lambda t: t.run(["cat"], input=data)))
    assert result.rc == 0 and result.stdout.encode() == data


def test_timeout_kills_the_command(make_transport: Callable[[], Transport], tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    argv = ["sh", "-c", 'echo $$ > "$1"; exec sleep 60', "sh", str(pidfile)]
    result = arun(lambda: _with(make_transport, lambda t: t.run(argv, timeout=1)))
    assert result.rc is None and result.error == "timeout after 1s"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), f"remote command {pid} survived its timeout"


def test_cancel_stops_the_command_and_its_children(
    make_transport: Callable[[], Transport], tmp_path: Path
) -> None:
    """Ctrl-C: the remote command and what it started are stopped (also for root logins)."""
    pidfile = tmp_path / "pid"
    argv = ["sh", "-c", 'sleep 60 & echo $! > "$1"; wait', "sh", str(pidfile)]

    async def body(t: Transport) -> None:
        task = asyncio.ensure_future(t.run(argv, sudo=True))
        for _ in range(100):
            if pidfile.exists():
                break
            await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    arun(lambda: _with(make_transport, body))
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), f"child {pid} of a cancelled command survived"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_sudo_runs_as_root(make_transport: Callable[[], Transport]) -> None:
    result = arun(lambda: _with(make_transport, lambda t: t.run(["id", "-u"], sudo=True)))
    assert (result.rc, result.stdout) == (0, "0\n")


def test_write_file_is_atomic_with_mode_and_owner(
    make_transport: Callable[[], Transport], tmp_path: Path
) -> None:
    target = tmp_path / "etc" / "piherd.conf"
    target.parent.mkdir()
    target.write_text("old\n")
    group = grp.getgrgid(1).gr_name  # "daemon" on Debian

    async def body(t: Transport) -> bytes | None:
        await t.write_file(str(target), b"new\ncontent\n", mode=0o640, owner="root", group=group)
        return await t.read_file(str(target), sudo=True)

    assert arun(lambda: _with(make_transport, body)) == b"new\ncontent\n"
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert (info.st_uid, info.st_gid) == (0, 1)
    assert sorted(p.name for p in target.parent.iterdir()) == ["piherd.conf"]


def test_read_missing_file_is_none(make_transport: Callable[[], Transport], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    assert arun(lambda: _with(make_transport, lambda t: t.read_file(missing))) is None


def test_interrupted_write_leaves_old_file(
    make_transport: Callable[[], Transport], tmp_path: Path
) -> None:
    target = tmp_path / "big"
    target.write_bytes(b"old")
    big = os.urandom(64 << 20)

    async def body(t: Transport) -> None:
        task = asyncio.ensure_future(t.write_file(str(target), big, mode=0o644))
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TransportError):
            await task

    arun(lambda: _with(make_transport, body))
    time.sleep(1)  # let the remote side notice the closed channel
    # Old or new, never a mix (a fast local write may finish before the cancel lands).
    assert target.read_bytes() in (b"old", big)
    # The next write of the same file cleans any leftover temp file.
    arun(lambda: _with(make_transport, lambda t: t.write_file(str(target), b"x", mode=0o600)))
    assert target.read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".piherd-tmp-")] == []


@pytest.mark.root
def test_short_stdin_never_replaces_file(sshd: LoopbackSshd, tmp_path: Path) -> None:
    """What a connection dropped mid-write looks like to the remote script."""
    target = tmp_path / "f"
    target.write_text("old")
    content = b"0123456789" * 10
    argv = [
        "sh", "-c", remote_scripts.WRITE_FILE, "sh", str(target), "0644", "root", "root",
        str(len(content)), hashlib.sha256(content).hexdigest(),
    ]  # fmt: skip
    transport = ssh_transport(sshd, tmp_path)
    result = arun(lambda: _with(lambda: transport, lambda t: t.run(argv, input=content[:37])))
    assert result.rc == 75 and "left unchanged" in result.stderr
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "known_hosts"]


def test_local_root_prefix(tmp_path: Path) -> None:
    transport = LocalTransport("n", root=tmp_path)
    (tmp_path / "etc").mkdir()
    arun(lambda: transport.write_file("/etc/hosts", b"127.0.0.1 x\n", mode=0o644))
    assert (tmp_path / "etc" / "hosts").read_bytes() == b"127.0.0.1 x\n"
    assert arun(lambda: transport.read_file("/etc/hosts")) == b"127.0.0.1 x\n"


@pytest.mark.root
def test_accept_new_records_the_key(sshd: LoopbackSshd, tmp_path: Path) -> None:
    seen: list[tuple[str, str, str]] = []
    transport = ssh_transport(
        sshd, tmp_path, on_new_host_key=lambda *a: seen.append(a), fallback_hosts=()
    )
    arun(lambda: _with(lambda: transport, lambda t: t.run(["true"])))
    assert (tmp_path / "known_hosts").read_text().strip() == sshd.host_key_line("127.0.0.1")
    assert [(n, a) for n, a, _ in seen] == [("node01", "127.0.0.1")]
    assert seen[0][2].startswith("SHA256:")
    # Second contact: the key is known, nothing new is recorded or announced.
    again = ssh_transport(sshd, tmp_path, on_new_host_key=lambda *a: seen.append(a))
    arun(lambda: _with(lambda: again, lambda t: t.run(["true"])))
    assert len(seen) == 1
    assert len((tmp_path / "known_hosts").read_text().splitlines()) == 1


@pytest.mark.root
def test_changed_host_key_is_refused(sshd: LoopbackSshd, tmp_path: Path) -> None:
    keygen(tmp_path / "other", "other")
    other = (tmp_path / "other.pub").read_text().split()[:2]
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    transport = ssh_transport(sshd, tmp_path)
    with pytest.raises(TransportError) as caught:
        arun(lambda: _with(lambda: transport, lambda t: t.run(["true"])))
    message = str(caught.value)
    assert message.startswith("node01: host key changed")
    assert message.count("SHA256:") == 2
    assert len((tmp_path / "known_hosts").read_text().splitlines()) == 1


@pytest.mark.root
def test_fallback_address_answers(sshd: LoopbackSshd, tmp_path: Path) -> None:
    transport = ssh_transport(sshd, tmp_path, host="127.0.0.2", fallback_hosts=["127.0.0.1"])
    result = arun(lambda: _with(lambda: transport, lambda t: t.run(["true"])))
    assert result.rc == 0 and transport.address == "127.0.0.1"


@pytest.mark.root
def test_unreachable_and_auth_refused(sshd: LoopbackSshd, tmp_path: Path) -> None:
    closed = ssh_transport(sshd, tmp_path, port=free_port())
    with pytest.raises(TransportError, match=r"node01: unreachable \(connection refused\)"):
        arun(closed.connect)
    keygen(tmp_path / "stranger", "stranger")
    stranger = ssh_transport(sshd, tmp_path, client_keys=[tmp_path / "stranger"])
    with pytest.raises(TransportError, match="authentication refused for user root"):
        arun(stranger.connect)
