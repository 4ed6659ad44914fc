"""Fact output as safe.stream prints it, for fixtures written as readable fields.

A fixture of a stream fact keeps the fields it was made from under ``_fields``
(one list per record; text that is not UTF-8 as surrogate escapes, "\\udcff"
for the byte 0xff); test_safe.py checks that its ``output`` is their encoding.
Regenerate a fixture's output: python -m tests.unit.streams FILE...
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from dockguard.operations import safe


def encode(tag: str, records: list[list[str]], end: bool = True) -> str:
    raw = b"".join(safe.raw(f) + b"\0" for record in records for f in record)
    if end:
        raw += safe.END + b"\0"
    return f"{tag}:{base64.b64encode(raw).decode()}"


def regenerate(path: Path) -> None:
    data = json.loads(path.read_text())
    tag = data["output"][0].partition(":")[0]
    data["output"] = [encode(tag, data["_fields"])]
    path.write_text(dump(data))


def dump(data) -> str:
    """A fixture's JSON: text as it is, unless it holds surrogate escapes (then \\u escapes)."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=2) + "\n"
    return text


if __name__ == "__main__":
    for name in sys.argv[1:]:
        regenerate(Path(name))
