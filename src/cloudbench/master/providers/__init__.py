"""Providers bring up the machines (or local processes) that run a run's runners."""

from __future__ import annotations

from cloudbench.master.providers.base import Provider, ProviderContext, ProviderError

__all__ = ["Provider", "ProviderContext", "ProviderError", "make_provider"]


def make_provider(name: str) -> Provider:
    """The provider implementation for a config's provider key (imported lazily)."""
    if name == "local":
        from cloudbench.master.providers.local import LocalProvider

        return LocalProvider()
    raise ProviderError(
        f"provider {name!r} is not supported by `cloudbench run` yet "
        "(only local; AWS arrives with the cloud work). Use --provider local."
    )
