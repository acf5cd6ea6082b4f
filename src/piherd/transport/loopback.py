"""A throwaway OpenSSH server on 127.0.0.1 for transport tests and benchmarks (needs root).

Everything lives in one directory: its own host key, a client key, authorized_keys, an
sshd_config and the pid file. `LoopbackSshd(dir).start()` ... `.stop()` (by PID).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, comment: str) -> None:
    """An ed25519 key pair at path / path.pub (no passphrase)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class LoopbackSshd:
    """An sshd listening on `listen` addresses (all loopback) at `port`, run from `workdir`."""

    workdir: Path
    listen: tuple[str, ...] = ("127.0.0.1",)
    port: int = 0
    max_startups: str = "10:30:100"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host_key(self) -> Path:
        return self.workdir / "host_ed25519"

    @property
    def client_key(self) -> Path:
        return self.workdir / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def config(self) -> Path:
        return self.workdir / "sshd_config"

    def host_key_line(self, host: str) -> str:
        """A known_hosts line for `host` at this port with the server's real key."""
        pattern = host if self.port == 22 else f"[{host}]:{self.port}"
        key_type, key_data = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"{pattern} {key_type} {key_data}"

    def start(self) -> LoopbackSshd:
        """Write keys and config, start sshd -D, wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        if not self.host_key.exists():
            keygen(self.host_key, "piherd-loopback-host")
        if not self.client_key.exists():
            keygen(self.client_key, "piherd-loopback-client")
        (self.workdir / "authorized_keys").write_text(
            self.client_key.with_suffix(".pub").read_text()
        )
        lines = [f"Port {self.port}"] + [f"ListenAddress {a}" for a in self.listen]
        lines += [
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "UseDNS no",
            f"MaxStartups {self.max_startups}",
            "LogLevel ERROR",
            "Subsystem sftp internal-sftp",
        ]
        self.config.write_text("\n".join(lines) + "\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config)],
            stdin=subprocess.DEVNULL,
            stderr=open(self.workdir / "sshd.log", "ab"),  # noqa: SIM115 - child keeps it
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.workdir / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd exited with {self.process.returncode}: {log}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.listen[0], self.port), timeout=0.5),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on {self.listen[0]}:{self.port} within 10s")

    def stop(self) -> None:
        """Stop the sshd this object started (by its PID) and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> LoopbackSshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def is_root() -> bool:
    """sshd needs root here (privilege separation, logging in as any user)."""
    return os.geteuid() == 0
