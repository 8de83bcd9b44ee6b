"""Providers bring up the machines (or local processes) that run a run's runners."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from cloudbench.master.providers.base import Provider, ProviderContext, ProviderError

if TYPE_CHECKING:
    from cloudbench.master.stacks import MetaDeployment

__all__ = ["Provider", "ProviderContext", "ProviderError", "make_provider"]


def make_provider(
    name: str,
    *,
    meta: MetaDeployment | None = None,
    console: Console | None = None,
    logs_dir: Path = Path("logs"),
) -> Provider:
    """The provider implementation for a config's provider key (imported lazily)."""
    if name == "local":
        from cloudbench.master.providers.local import LocalProvider

        return LocalProvider()
    if name in ("aws", "azure", "cloud") and meta is not None:
        # One provider for every cloud of the run, so all their stacks apply in parallel.
        from cloudbench.master.providers.driver import StackDriver

        return StackDriver(meta, console or Console(), logs_dir)
    raise ProviderError(f"provider {name!r} is not supported by `cloudbench run`")
