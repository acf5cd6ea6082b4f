"""First-boot customisation of Raspberry Pi OS images (`piherd image`).

Layout: `partitions` finds the boot and root partitions of an image, `bootfs` reads and
writes files on the FAT boot partition (mtools, no root, no mount) or a mounted boot
directory, `release` detects the OS release, `firstboot` holds what a node must get,
one writer module per OS release (`firstrun`, `cloudinit`, `userconf`), `node_keys` makes
host keys and records them, `sparse` copies images, `device` writes a card.
"""
