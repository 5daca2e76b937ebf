"""Every Markdown document the tree cites exists (issue 8).

Code, comments, docs and tests cite design documents by path (the wire
contract, the domain reference, the analytics notes).  A citation is a token
ending in the Markdown extension; it must name a tracked file, either from the
repository root or from the citing file's own folder (a relative Markdown
link).  URLs are not citations of this tree and are left out.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
CITATION_RE: Final = re.compile(r"(?<![\w./-])(?:\.{1,2}/)*[\w.-]+(?:/[\w.-]+)*\.md\b")
URL_RE: Final = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
# Generated or third-party files: not ours to cite from.
SKIPPED: Final = frozenset({"package-lock.json"})
WALK_EXCLUDED: Final = frozenset({".git", ".venv", "venv", "node_modules", "var", "build"})


def tracked_files(root: Path) -> list[str]:
    """Paths of the tracked files, relative to ``root`` (a walk without git)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and not WALK_EXCLUDED & set(p.relative_to(root).parts)
        )
    return sorted(name for name in out.decode().split("\0") if name)


def citations(text: str) -> list[str]:
    """Markdown paths cited in ``text``, in order, URLs excluded."""
    return CITATION_RE.findall(URL_RE.sub(" ", text))


def resolves(root: Path, citing: str, cited: str) -> bool:
    """True when ``cited`` names an existing file inside ``root``."""
    for base in (root, (root / citing).parent):
        target = (base / cited).resolve()
        if target.is_relative_to(root) and target.is_file():
            return True
    return False


def broken_citations(root: Path, files: list[str]) -> list[str]:
    broken = []
    for name in files:
        if name in SKIPPED:
            continue
        try:
            text = (root / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the work tree
        for lineno, line in enumerate(text.splitlines(), start=1):
            for cited in citations(line):
                if not resolves(root, name, cited):
                    broken.append(f"{name}:{lineno}: {cited}")
    return broken


def test_every_cited_markdown_file_exists() -> None:
    files = tracked_files(ROOT)
    assert len(files) > 100  # the scan really ran over the tree
    assert broken_citations(ROOT, files) == []


def test_citations_are_found_and_judged(tmp_path: Path) -> None:
    md = ".md"  # spelled apart, so this file's own deliberate breakage is no citation
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / f"GUIDE{md}").write_text(f"See NOTES{md} and ../README{md}.\n")
    (tmp_path / "docs" / f"NOTES{md}").write_text("")
    (tmp_path / f"README{md}").write_text("")
    (tmp_path / "code.py").write_text(
        f"# docs/GUIDE{md}, docs/GONE{md}, GUIDE{md}\n"
        f"# https://example.org/x/MISSING{md} is a URL\n"
        f"# ../outside/REF{md} leaves the tree\n"
    )
    files = [f"README{md}", "code.py", f"docs/GUIDE{md}", f"docs/NOTES{md}"]
    assert broken_citations(tmp_path, files) == [
        f"code.py:1: docs/GONE{md}",
        f"code.py:1: GUIDE{md}",
        f"code.py:3: ../outside/REF{md}",
    ]
