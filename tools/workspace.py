"""Where tools write their outputs: one folder per run, `root/<run_id>/artifacts/`.

Its own module so that both `tools.files` (which checks the folders a run may read) and `tools.context` (which
holds the run's workspace) can use it without importing each other.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Workspace"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class Workspace:
    """Where tools write their outputs: `root/<run_id>/artifacts/`. The Crew sets `run_id` for each run."""

    root: Path
    run_id: str = "adhoc"
    written: list[Path] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, run_id={self.run_id!r}, {len(self.written)} files)"

    @property
    def folder(self) -> Path:
        """This run's folder. ValueError for a run id that would leave `root` (`..`, `.`, a separator)."""
        if self.run_id in ("", ".", "..") or "/" in self.run_id or "\\" in self.run_id:
            raise ValueError(f"run id {self.run_id!r} is not a folder name; use letters, digits or _.:-")
        return self.root / self.run_id / "artifacts"

    def new_path(self, stem: str, suffix: str) -> Path:
        """A fresh path for an output file in this run's folder (created); `stem` keeps only letters, digits,
        `_` and `-`, so an output never lands outside the folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        safe_stem = _UNSAFE.sub("_", stem).strip("_") or "output"
        safe_suffix = "." + _UNSAFE.sub("", suffix.lstrip(".")) if suffix.strip(".") else ""
        path = self.folder / f"{safe_stem}-{uuid.uuid4().hex[:8]}{safe_suffix}"
        self.written.append(path)
        return path
