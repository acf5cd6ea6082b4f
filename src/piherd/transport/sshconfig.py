"""OpenSSH client config files, cut down per host once so asyncssh need not re-read them whole.

asyncssh resolves `config=` files on every connect, in full: every line of every file is
tokenized with shlex and every `Host` line re-compiled, whether it can match or not. A
cluster ssh_config with one `Host` block per node (what `piherd sim` writes) makes that
O(nodes) per connection, O(nodes^2) per fan-out: ~12 ms of client CPU per connection with
256 hosts, more than the whole rest of a connection. asyncssh has no way to parse a file
once and resolve it for many hosts (its parser applies only the blocks matching the one
host it is given), so this module does the part asyncssh cannot, and only that:

each file is read once per process (again when it changes) and split into sections at its
top-level `Host` and `Match` lines; for a host, every `Host` section whose patterns cannot
match it (decided with asyncssh's own WildcardPatternList, as asyncssh would) is blanked
out, and asyncssh is given the result to resolve as before: global lines, `Match`
sections, `Include`s, tokens and the first-value-wins order all stay asyncssh's business.
Line numbers are kept (blanked lines stay as empty lines), so asyncssh's error messages
still point at the right line. Hosts matching the same `Host` sections share one cut-down
file, so a sim's fan-out writes one file, whatever its size. A file that uses hostname
canonicalization (whose second pass matches `Host` again against another name), or that
quotes an option name, is passed through unchanged.
"""

from __future__ import annotations

import contextlib
import itertools
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from asyncssh.pattern import WildcardPatternList

# Characters a line may hold for str.split() to split it exactly as shlex.split() does:
# printable ASCII without quotes or backslash, and the whitespace shlex knows.
_PLAIN = frozenset(map(chr, range(0x20, 0x7F))) - frozenset("'\"\\") | frozenset("\t\r\n")


@dataclass(frozen=True)
class _HostSection:
    """Lines [start, end) of a file, opened by a `Host` line."""

    start: int
    end: int
    names: frozenset[str]  # positive literal patterns, when `matcher` is None
    matcher: WildcardPatternList | None  # for patterns with wildcards or negations


@dataclass(frozen=True)
class _Parsed:
    signature: tuple[int, int]  # (st_mtime_ns, st_size) of the file read
    lines: tuple[str, ...]
    sections: tuple[_HostSection, ...]  # empty: pass the file through unchanged


def _keyword(line: str) -> str:
    """The lower-case option name of a config line ('' for blank lines and comments)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return ""
    end = 0
    while end < len(text) and not text[end].isspace() and text[end] != "=":
        end += 1
    return text[:end].lower()


def _words(line: str) -> list[str] | None:
    """shlex.split(line), None where it fails; plain lines (one per node) split ~20x faster."""
    if set(line) <= _PLAIN:
        return line.split()
    try:
        return shlex.split(line)
    except ValueError:
        return None


def _host_patterns(line: str) -> list[str] | None:
    """The patterns of a `Host` line split as asyncssh splits it; None if it cannot."""
    words = _words(line)
    if words is None:
        return None
    args: list[str] = []
    for word in words:  # asyncssh's handling of `=` on conditional lines
        if word.startswith("="):
            if len(word) > 1:
                args.append(word[1:])
        elif word.endswith("="):
            args.append(word[:-1])
        elif "=" in word:
            args.extend(word.split("=", 1))
        else:
            args.append(word)
    return args[1:] or None


def _section(start: int, end: int, patterns: list[str]) -> _HostSection:
    joined = ",".join(patterns)
    parts = joined.split(",")
    if any(not p or p.startswith("!") or "*" in p or "?" in p for p in parts):
        return _HostSection(start, end, frozenset(), WildcardPatternList(joined))
    # Without wildcards fnmatch compares literally (asyncssh escapes brackets).
    return _HostSection(start, end, frozenset(parts), None)


def _parse(text: str, signature: tuple[int, int]) -> _Parsed:
    # Lines as Python's text files (asyncssh) see them: read_text() made every end "\n".
    lines = tuple(line + "\n" for line in text.split("\n"))
    keywords = [_keyword(line) for line in lines]
    quoted = any(line.lstrip()[:1] in ("'", '"') for line in lines)
    if quoted or "canonicalizehostname" in keywords:
        return _Parsed(signature, lines, ())
    bounds = [i for i, k in enumerate(keywords) if k in ("host", "match")] + [len(lines)]
    sections = []
    for start, end in itertools.pairwise(bounds):
        if keywords[start] != "host":
            continue
        patterns = _host_patterns(lines[start])
        if patterns is None:  # let asyncssh report it
            continue
        sections.append(_section(start, end, patterns))
    return _Parsed(signature, lines, tuple(sections))


class SshConfigCache:
    """Cut-down copies of OpenSSH client config files, one per set of matching `Host` blocks.

    Used from the event loop only (before asyncssh hands option parsing to its threads).
    The copies live in a private temporary directory, removed by close() or at exit.
    """

    def __init__(self) -> None:
        self._parsed: dict[Path, _Parsed] = {}
        self._written: dict[tuple[Path, tuple[int, int], tuple[int, ...]], str] = {}
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._count = 0

    def files_for(self, paths: list[Path], host: str) -> list[str]:
        """What to pass as asyncssh's `config=` for `host`, in the same order as `paths`."""
        return [self._file_for(path, host) for path in paths]

    def _file_for(self, path: Path, host: str) -> str:
        try:
            info = path.stat()
        except OSError:
            return str(path)  # asyncssh reports it, as before
        signature = (info.st_mtime_ns, info.st_size)
        parsed = self._parsed.get(path)
        if parsed is None or parsed.signature != signature:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return str(path)
            parsed = _parse(text, signature)
            self._parsed[path] = parsed
            for key in [k for k in self._written if k[0] == path]:  # copies of the old text
                with contextlib.suppress(OSError):
                    Path(self._written.pop(key)).unlink()
        if not parsed.sections:
            return str(path)
        matching = tuple(
            i
            for i, s in enumerate(parsed.sections)
            if (host in s.names if s.matcher is None else s.matcher.matches(host))
        )
        key = (path, signature, matching)
        written = self._written.get(key)
        if written is None:
            try:
                written = self._write(path, parsed, matching)
            except OSError:  # no usable temporary directory: asyncssh reads the whole file
                return str(path)
            self._written[key] = written
        return written

    def _write(self, path: Path, parsed: _Parsed, matching: tuple[int, ...]) -> str:
        lines = list(parsed.lines)
        for i, section in enumerate(parsed.sections):
            if i not in matching:
                lines[section.start : section.end] = ["\n"] * (section.end - section.start)
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="piherd-ssh-config-")
        self._count += 1
        out = Path(self._dir.name) / f"{self._count}-{path.name}"
        out.write_text("".join(lines), encoding="utf-8")
        return str(out)

    def close(self) -> None:
        """Remove the cut-down copies now (they are also removed at exit)."""
        if self._dir is not None:
            with contextlib.suppress(OSError):
                self._dir.cleanup()
        self._dir = None
        self._written.clear()
