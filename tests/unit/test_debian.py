"""The Debian command vocabulary: exact argv, names after `--`, safe to quote."""

from __future__ import annotations

import shlex

import pytest

from piherd.ops import debian
from piherd.ops.changes import ChangeKind

ODD = "-rf /etc/x y;$(reboot)"  # a name a shell or an option parser would misread
UNIT_KINDS = [k for k in ChangeKind if k.sets_up_unit or k.runs_unit or k == ChangeKind.STOP]


def test_apt_install_keeps_config_files_and_waits_for_the_lock() -> None:
    assert debian.apt_install(["chrony", "slurmd"]) == [
        "env", "DEBIAN_FRONTEND=noninteractive",
        "apt-get", "install", "-y", "-q", "--no-install-recommends",
        "-o", "Dpkg::Options::=--force-confdef",
        "-o", "Dpkg::Options::=--force-confold",
        "-o", "DPkg::Lock::Timeout=300",
        "--", "chrony", "slurmd",
    ]  # fmt: skip


def test_apt_update_purge_and_dpkg_resume() -> None:
    env = ["env", "DEBIAN_FRONTEND=noninteractive"]
    assert debian.apt_update() == [*env, "apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"]
    assert debian.apt_purge(["munge"]) == [
        *env, "apt-get", "purge", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "--", "munge",
    ]  # fmt: skip
    assert debian.dpkg_resume() == [
        *env, "dpkg", "--force-confdef", "--force-confold", "--configure", "-a",
    ]  # fmt: skip


def test_apt_commands_never_look_like_the_interrupted_dpkg_message() -> None:
    """apply retries after `dpkg --configure -a` when apt's error names it; the error
    also quotes our own command line, which must not trigger that by itself."""
    for argv in (debian.apt_install(["a"]), debian.apt_update(), debian.dpkg_resume()):
        assert debian.DPKG_INTERRUPTED not in shlex.join(argv)
    message = "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct"
    assert debian.DPKG_INTERRUPTED in message


@pytest.mark.parametrize("kind", UNIT_KINDS, ids=str)
def test_unit_commands_put_the_unit_after_double_dash(kind: ChangeKind) -> None:
    argv = debian.systemctl_for(kind, ODD)
    assert argv[0] == "systemctl" and argv[-2:] == ["--", ODD]
    assert ("--now" in argv) == (kind in (ChangeKind.MASK, ChangeKind.DISABLE))
    assert shlex.split(shlex.join(argv)) == argv


def test_unit_verbs() -> None:
    verbs = {k.value: debian.systemctl_for(k, "u.service")[1] for k in UNIT_KINDS}
    assert verbs == {
        "unmask": "unmask", "mask": "mask", "disable": "disable", "enable": "enable",
        "start": "start", "restart": "restart", "reload": "reload-or-restart",
        "stop": "stop",
    }  # fmt: skip


@pytest.mark.parametrize("kind", [k for k in ChangeKind if k not in UNIT_KINDS], ids=str)
def test_only_unit_kinds_have_a_systemctl_command(kind: ChangeKind) -> None:
    with pytest.raises(ValueError, match="not a systemctl change"):
        debian.systemctl_for(kind, "u.service")


def test_other_systemctl_commands() -> None:
    assert debian.systemctl_daemon_reload() == ["systemctl", "daemon-reload"]
    assert debian.systemctl_stop("a.timer", "a") == ["systemctl", "stop", "--", "a.timer", "a"]
    assert debian.systemctl_start("a") == ["systemctl", "start", "--", "a"]
    assert debian.systemctl_restart("a") == ["systemctl", "restart", "--", "a"]
    assert debian.systemctl_reload("ssh") == ["systemctl", "reload", "--", "ssh"]
    assert debian.systemctl_reset_failed("a") == ["systemctl", "reset-failed", "--", "a"]
    assert debian.systemctl_disable_now("a") == ["systemctl", "disable", "--now", "--", "a"]
    assert debian.systemctl_disable_now("a") == debian.systemctl_for(ChangeKind.DISABLE, "a")


def test_file_commands_put_the_path_after_double_dash() -> None:
    assert debian.install_dir("/srv/x y", 0o2750, "slurm", "adm") == [
        "install", "-d", "-m", "2750", "-o", "slurm", "-g", "adm", "--", "/srv/x y",
    ]  # fmt: skip
    assert debian.mkdir_parents(ODD) == ["mkdir", "-p", "--", ODD]
    assert debian.remove_file(ODD) == ["rm", "-f", "--", ODD]
    assert debian.remove_dir_if_empty(ODD) == ["rmdir", "--ignore-fail-on-non-empty", "--", ODD]
    assert debian.set_hostname("node01") == ["hostname", "--", "node01"]
    for argv in (debian.install_dir(ODD, 0o755, "root", "root"), debian.remove_file(ODD)):
        assert shlex.split(shlex.join(argv)) == argv


def test_journal_tail_names_the_unit_as_one_option() -> None:
    assert debian.journal_tail("-x.service", 7) == [
        "journalctl", "--unit=-x.service", "-n", "7", "--no-pager", "-o", "cat",
    ]  # fmt: skip
