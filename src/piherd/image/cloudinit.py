"""trixie: cloud-init NoCloud files on the boot partition (user-data, meta-data, network-config).

Shaped like what Raspberry Pi Imager 2.x writes for `cloudinit-rpi` images
(src/customization_generator.cpp, downloadthread.cpp): `#cloud-config` user-data with the
hostname, the default user and its key, the time zone and `runcmd` enabling sshd (Raspberry
Pi OS ships it off); meta-data with a fresh instance-id, also put on the kernel command
line as `ds=nocloud;i=ID`. piherd adds the host keys (`ssh_keys`) and a netplan
network-config holding the node's static address. Strings are JSON-quoted, which YAML
reads as double-quoted scalars, so no value can change the documents' structure.
"""

from __future__ import annotations

import json

from piherd.image.firstboot import FirstBoot


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=True)


def user_data(fb: FirstBoot) -> str:
    """The `#cloud-config` document."""
    lines = [
        "#cloud-config",
        f"# Written by `piherd image` for {fb.label} of cluster {fb.cluster}.",
        "# It holds private host keys.",
    ]
    if fb.hostname is not None:
        lines += [f"hostname: {_q(fb.hostname)}", "manage_etc_hosts: true"]
        if fb.domain:
            lines.append(f"fqdn: {_q(fb.hostname + '.' + fb.domain)}")
    lines += [
        f"timezone: {_q(fb.timezone)}",
        "user:",
        f"  name: {_q(fb.user)}",
        "  shell: /bin/bash",
        "  lock_passwd: true",
        '  sudo: "ALL=(ALL) NOPASSWD:ALL"',
        "  ssh_authorized_keys:",
        f"    - {_q(fb.admin_key)}",
        "ssh_pwauth: false",
        "ssh_deletekeys: true",  # given ssh_keys, cloud-init writes them and makes none
        "ssh_keys:",
    ]
    for key in fb.host_keys:
        lines.append(f"  {key.kind}_private: |")
        lines += [f"    {line}" for line in key.private.decode("ascii").splitlines()]
        lines.append(f"  {key.kind}_public: {_q(key.public)}")
    lines += [
        "bootcmd:",
        # Raspberry Pi OS regenerates host keys on its first boot; keep the recorded ones.
        '  - [ sh, -c, "systemctl disable regenerate_ssh_host_keys.service 2>/dev/null || true" ]',
        "runcmd:",
        "  - [ systemctl, enable, --now, ssh ]",
    ]
    return "\n".join(lines) + "\n"


def meta_data(fb: FirstBoot) -> str:
    """The NoCloud meta-data: the instance-id (a new one per imaging re-runs cloud-init)."""
    return f"instance-id: {fb.instance_id}\n"


def network_config(fb: FirstBoot) -> str | None:
    """netplan v2 with the node's static address; None for a generic image (DHCP)."""
    static = fb.static
    if static is None:
        return None
    lines = [
        "network:",
        "  version: 2",
        "  ethernets:",
        f"    {_q(static.interface)}:",
        "      dhcp4: false",
        "      dhcp6: false",
        f"      addresses: [{_q(static.address)}]",
    ]
    if static.gateway:
        # 0.0.0.0/0, not netplan's `default`: cloud-init parses the file itself first, and
        # 25.1 (trixie) fails its whole init stage on `to: default` (seen on the sim).
        via = f"          via: {_q(static.gateway)}"
        lines += ["      routes:", "        - to: 0.0.0.0/0", via]
    # cloud-init skips a nameservers entry with no addresses (a search domain alone): the
    # search domain then comes with `piherd up`'s own file.
    if static.dns:
        lines.append("      nameservers:")
        lines.append(f"        addresses: [{', '.join(_q(a) for a in static.dns)}]")
        if static.search:
            lines.append(f"        search: [{_q(static.search)}]")
    return "\n".join(lines) + "\n"


def files(fb: FirstBoot) -> dict[str, bytes]:
    """user-data, meta-data and (for a node) network-config."""
    out = {"user-data": user_data(fb).encode(), "meta-data": meta_data(fb).encode()}
    network = network_config(fb)
    if network is not None:
        out["network-config"] = network.encode()
    return out


def cmdline_words(fb: FirstBoot) -> list[str]:
    """`ds=nocloud;i=ID`, as Imager adds, so cloud-init finds its seed on every boot."""
    return [f"ds=nocloud;i={fb.instance_id}"]
