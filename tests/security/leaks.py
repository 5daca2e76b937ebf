"""Find secrets where they must never be: in log files and captured output (a helper,
not a test module)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

PREFIX = 16  # a leak cut short (``%.16s``) is still a leak


def secrets_under(root: Path) -> dict[str, str]:
    """Every secret stored under ``root`` (var/secrets/**): file path → its content."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            value = path.read_text(encoding="utf-8", errors="replace").strip()
            if value:
                found[str(path.relative_to(root))] = value
    return found


def leaks(
    secrets: Mapping[str, str], files: Iterable[Path], texts: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """``(secret name, where)`` for each secret, or its first ``PREFIX`` characters,
    found in any of ``files`` (read as bytes, so binary logs count) or ``texts``."""
    needles = {
        name: {value.encode(), value[:PREFIX].encode()}
        for name, value in secrets.items()
        if len(value) >= PREFIX
    }
    haystacks = [(str(p), p.read_bytes()) for p in files]
    haystacks += [(name, text.encode()) for name, text in (texts or {}).items()]
    return [
        (name, where)
        for where, data in haystacks
        for name, forms in needles.items()
        if any(form in data for form in forms)
    ]
