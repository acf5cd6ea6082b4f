"""The pure parts of the SSH transport: quoting, error wording, the accept-new policy."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import asyncssh

from piherd.transport.hostkeys import AcceptNewClient, known_entries, known_keys
from piherd.transport.ssh import SshTransport, describe_os_error


def transport(user: str, **kw: object) -> SshTransport:
    return SshTransport(
        "node02", "10.0.0.2", username=user, known_hosts=Path("/nonexistent/kh"),
        ssh_config=None, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_command_line_quotes_and_sudo() -> None:
    pi = transport("pi")
    assert pi.command_line(["echo", "a b", "$X"], sudo=True) == "sudo -n -- echo 'a b' '$X'"
    assert pi.command_line(["true"], sudo=False) == "true"
    assert transport("root").command_line(["id"], sudo=True) == "id"
    assert transport("root", use_sudo=True).command_line(["id"], sudo=True) == "sudo -n -- id"
    assert pi.address is None  # nothing connected by the constructor


def test_connect_error_wording() -> None:
    assert describe_os_error(ConnectionRefusedError(), 10) == "unreachable (connection refused)"
    assert describe_os_error(TimeoutError(), 2.5) == "unreachable (timed out after 2.5s)"
    no_route = OSError(errno.EHOSTUNREACH, "No route to host")
    assert describe_os_error(no_route, 10) == "unreachable (no route to host)"
    assert describe_os_error(socket.gaierror(-2, "x"), 10) == "unreachable (name does not resolve)"
    assert "ulimit -n" in describe_os_error(OSError(errno.EMFILE, "Too many open files"), 10)


def test_accept_new_records_then_refuses_a_changed_key(tmp_path: Path) -> None:
    kh = tmp_path / "ssh" / "known_hosts"
    seen: list[tuple[str, str, str]] = []
    first = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()

    client = AcceptNewClient("node02", kh, [], 2222, lambda *a: seen.append(a))
    client.lookup("10.0.0.2", "10.0.0.2", 2222)
    assert client.validate_host_public_key("10.0.0.2", "10.0.0.2", 2222, first)
    assert kh.read_text().startswith("[10.0.0.2]:2222 ssh-ed25519 ")
    assert oct(kh.stat().st_mode & 0o777) == "0o600"
    assert seen == [("node02", "10.0.0.2", first.get_fingerprint("sha256"))]
    assert known_keys(kh, "10.0.0.2", "10.0.0.2", 2222) == [first]
    assert known_entries(kh, "10.0.0.3", "10.0.0.3", 2222)[0] == []

    again = AcceptNewClient("node02", kh, [], 2222, lambda *a: seen.append(a))
    again.lookup("10.0.0.2", "10.0.0.2", 2222)
    assert not again.validate_host_public_key("10.0.0.2", "10.0.0.2", 2222, other)
    assert again.refusal is not None and again.refusal.startswith("host key changed")
    assert other.get_fingerprint("sha256") in again.refusal
    assert first.get_fingerprint("sha256") in again.refusal
    assert len(kh.read_text().splitlines()) == 1 and len(seen) == 1
