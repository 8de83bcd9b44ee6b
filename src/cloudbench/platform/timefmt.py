"""Durations as people read them: ``3s``, ``2m05s``, ``1h02m``."""

from __future__ import annotations


def duration(
    seconds: float | None, *, missing: str = "-", sep: str = "", precise: bool = False
) -> str:
    """Whole seconds; above an hour the seconds show only when `precise`."""
    if seconds is None:
        return missing
    hours, rest = divmod(max(0, int(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        parts = [f"{hours}h", f"{minutes:02d}m"] + ([f"{secs:02d}s"] if precise else [])
    elif minutes:
        parts = [f"{minutes}m", f"{secs:02d}s"]
    else:
        parts = [f"{secs}s"]
    return sep.join(parts)
