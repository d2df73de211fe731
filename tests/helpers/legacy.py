"""The legacy fixtures: folders written by earlier releases, one per release, under tests/fixtures/.

Each `legacy_<commit>/` was written by `python -m scripts.dev.make_legacy_fixtures --checkout <worktree of
that commit>` and holds the same files (see that script's docstring).
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Oldest first.
RELEASES = ("7ce1752", "f926d17")


def legacy_folder(release: str) -> Path:
    """The fixture folder written by `release` (a short commit hash from `RELEASES`)."""
    return FIXTURES / f"legacy_{release}"
