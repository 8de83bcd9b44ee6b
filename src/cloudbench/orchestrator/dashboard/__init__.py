"""Server-rendered live dashboard (login, run page, polled fragment, "End run early")."""

from cloudbench.orchestrator.dashboard.routes import router

__all__ = ["router"]
