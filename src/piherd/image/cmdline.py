"""cmdline.txt: one line of kernel arguments; piherd appends its first-boot words to it."""

from __future__ import annotations

from collections.abc import Sequence

from piherd.image.partitions import ImageError
from piherd.model.escape import has_unsafe_char


def words(data: bytes) -> list[str]:
    """The kernel arguments of a cmdline.txt; ImageError unless it is one line of text."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ImageError("cmdline.txt is not ASCII text") from None
    body = text.removesuffix("\n").removesuffix("\r")
    if "\n" in body or "\r" in body or has_unsafe_char(body.replace("\t", " ")):
        raise ImageError("cmdline.txt must be a single line")
    return body.split()


def with_first_boot(data: bytes, added: Sequence[str]) -> bytes:
    """cmdline.txt with earlier first-boot words removed and `added` appended.

    Like Raspberry Pi Imager: `systemd.run=` and what follows it are taken off (firstrun.sh
    does the same with sed when it has run), and so is a `ds=nocloud` word.
    """
    kept: list[str] = []
    for word in words(data):
        if word.startswith("systemd.run"):
            break
        if not word.startswith("ds=nocloud"):
            kept.append(word)
    for word in added:
        if not word or any(c.isspace() for c in word) or has_unsafe_char(word):
            raise ImageError(f"not a kernel argument: {word!r}")
    return (" ".join([*kept, *added]) + "\n").encode("ascii")
