"""Turning what a user types (files, directories, glob patterns) into input paths.

Standard library only: the lifting environment imports it too.
"""

from __future__ import annotations

import glob
from pathlib import Path

HOI_SUFFIX = ".hoi.npz"
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def expand_inputs(items: list[str], suffixes: tuple[str, ...] = (HOI_SUFFIX,)) -> list[str]:
    """Paths, directories (their files ending in one of ``suffixes``, any case,
    recursively) and glob patterns -> sorted unique paths. An item that matches
    nothing is kept as it is, so that it is reported rather than lost."""
    wanted = tuple(s.lower() for s in suffixes)
    out: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(wanted))
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item, recursive=True))
        else:
            found = [item]
        out.extend(found or [item])
    return list(dict.fromkeys(out))
