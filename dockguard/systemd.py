"""systemd's own file formats, read and written the way systemd does: unit files and
their drop-ins (which ``ExecStart=`` wins), ``EnvironmentFile=`` files, and quoting
for a command line in a unit file.

The facts hand the raw bytes of these files over (base64); everything here is pure
Python, so the decision "which listeners will dockerd have after the next start" is
taken from the disk, whatever the running daemon says or fails to say.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

# Where systemd looks for drop-ins of a system unit, most important first: a file
# of the same name in an earlier directory masks the later ones.
DROPIN_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
               "/lib/systemd/system", "/usr/lib/systemd/system")  # fmt: skip


# The UnitFileState values for which `systemctl is-enabled` exits 0.
ENABLED_STATES = frozenset({"enabled", "enabled-runtime", "static", "indirect", "alias", "generated", "transient"})


def show_command(units: list[str], props: list[str]) -> str:
    """One `systemctl show` for several units (one systemctl, and one call to PID 1, instead of
    one per unit): a block of properties per unit, in the order asked, blocks separated by an
    empty line. (Within a block the order is systemd's: a service's own properties, MainPID,
    come before the unit's, Id.)"""
    return f"systemctl show -p Id {' '.join(f'-p {p}' for p in props)} {' '.join(units)} 2>/dev/null"


def show_var(unit: str) -> str:
    """The shell variable that holds ``unit``'s block in a batch's shared reading (prefetch)."""
    return "dg_sd_" + re.sub(r"[^A-Za-z0-9]", "_", unit)


def show(units: list[str], props: list[str]) -> str:
    """Shell that prints :func:`show_command`'s blocks: from the shared reading a batch of facts
    made with one systemctl before its parts (``dg_sd=1``, operations/prefetch.py; its blocks
    may hold more properties), else from a systemctl of its own."""
    blocks = " ".join(f'"${show_var(u)}"' for u in units)
    have = " && ".join(f'[ -n "${{{show_var(u)}+x}}" ]' for u in units)  # every unit in the shared reading
    return (f"if [ \"${{dg_sd:-}}\" = 1 ] && {have}; then printf '%s\\n\\n' {blocks}; "
            f"else {show_command(units, props)}; fi")  # fmt: skip


def show_each(source: str, units: list[str], body: str) -> str:
    """Shell that runs ``body`` for each block of the `systemctl show` output in ``source`` (a
    shell word), in order: ``$dg_u`` is the unit asked in that place, ``$dg_b`` its block, ``$dg_nl``
    a newline. Afterwards ``$dg_whole`` is 1 when every unit had its block and none was left over."""
    return (
        f"dg_nl='\n'; dg_r={source}; dg_us='{' '.join(units)} '; dg_whole=1; "
        'while [ -n "$dg_r" ]; do dg_b=${dg_r%%"$dg_nl$dg_nl"*}; dg_r=${dg_r#"$dg_b"}; '
        'dg_r=${dg_r#"$dg_nl"}; dg_r=${dg_r#"$dg_nl"}; [ -n "$dg_b" ] || continue; '
        'dg_u=${dg_us%% *}; dg_us=${dg_us#* }; if [ -z "$dg_u" ]; then dg_whole=; else '
        f'{body}; fi; done; [ -z "$dg_us" ] || dg_whole='
    )


def show_prop(prop: str) -> str:
    """Shell setting ``$dg_v`` to ``prop``'s value in the block ``$dg_b`` (empty if it has none)."""
    return (
        f'dg_v="$dg_nl$dg_b"; dg_v=${{dg_v#*"${{dg_nl}}{prop}="}}; '
        f'case $dg_v in "$dg_nl"*) dg_v=;; *) dg_v=${{dg_v%%"$dg_nl"*}};; esac'
    )


def show_preamble(units: list[str], props: list[str]) -> str:
    """Shell that reads every unit's ``props`` with one systemctl into the variables :func:`show`
    prints, and sets ``dg_sd=1`` when every unit had its block."""
    names = [show_var(u) for u in units]
    if len(set(names)) != len(units):
        raise ValueError(f"units whose shell variables collide: {units}")
    arms = " ".join(f"{u}) {v}=$dg_b;;" for u, v in zip(units, names, strict=True))
    return (
        f"dg_sd=; dg_out=$({show_command(units, props)}); "
        + show_each('"$dg_out"', units, f"case $dg_u in {arms} esac")
        + '; [ "$dg_whole" = 1 ] && dg_sd=1'
    )


def show_blocks(lines: list[str], units: list[str], props: list[str]) -> dict[str, dict[str, str]]:
    """``props`` of each unit from :func:`show`'s lines, as a fact prints them between the lines
    ``units-begin`` and ``units-end`` (or all of ``lines``): blocks split on empty lines, each the
    unit asked in its place (``Id`` is an alias's real name), the first value of each property."""
    if "units-begin" in lines:
        lines = lines[lines.index("units-begin") + 1 :]
        lines = lines[: lines.index("units-end")] if "units-end" in lines else []
    out: dict[str, dict[str, str]] = {}
    block: dict[str, str] | None = None
    for line in [*lines, ""]:
        if not line.strip():
            if block is not None and len(out) < len(units):
                out[units[len(out)]] = block
            block = None
            continue
        key, eq, value = line.partition("=")
        block = {} if block is None else block
        if eq and key in props and key not in block:
            block[key] = value
    return out


@dataclass(frozen=True)
class Line:
    """One assignment of a unit file: ``key=value`` in ``section``, at ``path``:``lineno``."""

    path: str
    lineno: int
    section: str
    key: str
    value: str

    @property
    def where(self) -> str:
        return f"{self.path} line {self.lineno}"


def parse_unit(path: str, text: str) -> list[Line]:
    """The assignments of a unit file or drop-in, continuation lines joined."""
    out: list[Line] = []
    section = ""
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        if pending is not None:
            start, acc = pending
            line = acc + " " + raw.strip()
        else:
            start, line = number, raw.strip()
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = (start, line[:-1].rstrip())
            continue
        pending = None
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, eq, value = line.partition("=")
        if eq:
            out.append(Line(path, start, section, key.strip(), value.strip()))
    return out


def dropin_order(paths: list[str]) -> list[str]:
    """The drop-ins systemd applies, in its order: by file name across every directory,
    a name in a more important directory masking the same name elsewhere."""
    best: dict[str, str] = {}
    rank = {d: i for i, d in enumerate(DROPIN_DIRS)}
    for p in paths:
        name = posixpath.basename(p)
        unit_dir = posixpath.dirname(posixpath.dirname(p))
        if name not in best or rank.get(unit_dir, 99) < rank.get(posixpath.dirname(posixpath.dirname(best[name])), 99):
            best[name] = p
    return [best[n] for n in sorted(best)]


def service_lines(fragment: tuple[str, str] | None, dropins: dict[str, str]) -> list[Line]:
    """Every [Service] assignment of the unit, vendor file first, then its drop-ins in order."""
    lines: list[Line] = []
    if fragment:
        lines += parse_unit(*fragment)
    for p in dropin_order(list(dropins)):
        lines += parse_unit(p, dropins[p])
    return [line for line in lines if line.section == "Service"]


def exec_start(lines: list[Line]) -> Line | None:
    """The ExecStart= that wins: the last one after the last reset (an empty ExecStart=)."""
    current: Line | None = None
    for line in lines:
        if line.key == "ExecStart":
            current = line if line.value else None
    return current


def environment_files(lines: list[Line]) -> list[str]:
    """EnvironmentFile= paths, in order (a leading '-' means: may be missing)."""
    out: list[str] = []
    for line in lines:
        if line.key == "EnvironmentFile":
            if not line.value:
                out = []
            else:
                out.append(line.value.lstrip("-"))
    return out


def parse_env_file(path: str, text: str) -> dict[str, tuple[str, int]]:
    """KEY=VALUE lines as systemd reads an EnvironmentFile= (not a shell: nothing is
    run), with the line each comes from: {key: (value, lineno)}."""
    out: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
            if raw.strip().partition("=")[2].strip()[0] == '"':
                value = re.sub(r"\\(.)", r"\1", value)
        out[key] = (value, number)
    return out


def split_words(value: str) -> list[str]:
    """A command line as systemd splits it: whitespace-separated words, with double or
    single quotes and backslash escapes; ``$$`` and ``%%`` stay as they are (see
    :func:`unescape`)."""
    words: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t\n":
            i += 1
        if i >= n:
            break
        word: list[str] = []
        while i < n and value[i] not in " \t\n":
            c = value[i]
            if c in "\"'":
                quote, i = c, i + 1
                while i < n and value[i] != quote:
                    if value[i] == "\\" and i + 1 < n:
                        c, i = _escape(value, i)
                        word.append(c)
                        continue
                    word.append(value[i])
                    i += 1
                i += 1
            elif c == "\\" and i + 1 < n:
                c, i = _escape(value, i)
                word.append(c)
            else:
                word.append(c)
                i += 1
        words.append("".join(word))
    return words


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "s": " "}


def _escape(value: str, i: int) -> tuple[str, int]:
    """The character a backslash escape at ``value[i]`` stands for, and where to go on."""
    c = value[i + 1]
    if c == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", value[i + 2 : i + 4]):
        return chr(int(value[i + 2 : i + 4], 16)), i + 4
    return _ESCAPES.get(c, c), i + 2


def expand(words: list[str], env: dict[str, str]) -> list[str]:
    """systemd's variable expansion in ExecStart=: a word that is exactly ``$NAME``
    becomes the value split at whitespace (nothing if unset or empty); ``${NAME}``
    inside a word is replaced by the value as it is; ``$$`` is a literal ``$``."""
    out: list[str] = []
    for w in words:
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            out += env.get(m.group(1), "").split()
            continue
        out.append(
            re.sub(
                r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), ""),
                w,
            )
        )
    return [unescape_percent(w) for w in out]


def unescape_percent(word: str) -> str:
    return word.replace("%%", "%")


_PLAIN = re.compile(r"[A-Za-z0-9_./:=@,+-]+")


_QUOTED = {"\\": "\\\\", '"': '\\"', "%": "%%", "$": "$$", "\n": "\\n", "\t": "\\t"}


def quote_arg(arg: str, variables: bool = True, always: bool = False) -> str:
    """One argument for a unit file, so that systemd gives the program exactly ``arg``:
    ``%`` (specifiers) doubled, ``$`` doubled where systemd expands variables (ExecStart=;
    ``variables=False`` for Environment= and the like), backslash, quotes and control
    characters escaped inside double quotes (``always``: quoted even when plain). NUL
    cannot be passed and is refused."""
    if "\0" in arg:
        raise ValueError("a command-line argument cannot hold a NUL byte")
    if arg and _PLAIN.fullmatch(arg) and not always:
        return arg
    out = []
    for c in arg:
        if c == "$" and not variables:
            out.append(c)
        elif c in _QUOTED:
            out.append(_QUOTED[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def join_args(argv: list[str]) -> str:
    return " ".join(quote_arg(a) for a in argv)


def unquote_args(value: str) -> list[str]:
    """The inverse of :func:`join_args` as systemd reads it (for tests and checks):
    split, then ``$$`` -> ``$`` and ``%%`` -> ``%``."""
    return [unescape_percent(w.replace("$$", "$")) for w in split_words(value)]
