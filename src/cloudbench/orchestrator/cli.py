"""`cloudbench orchestrator serve|migrate|sweep`."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer
from fastapi import FastAPI

from cloudbench.orchestrator.settings import OrchestratorSettings

app = typer.Typer(help="The orchestrator service: runs, tasks, results.", no_args_is_help=True)


def app_from_env() -> FastAPI:
    """uvicorn factory: every worker process builds its app from the environment."""
    from cloudbench.orchestrator.app import create_app

    return create_app(OrchestratorSettings())


def default_workers(database_url: str) -> int:
    """One process per CPU on Postgres; SQLite serialises writers on one file lock, so
    more processes there only add lock polling."""
    if database_url.startswith("sqlite"):
        return 1
    return os.cpu_count() or 1


def _settings_or_exit() -> OrchestratorSettings:
    settings = OrchestratorSettings()
    missing = settings.missing_secrets()
    if missing:
        typer.echo(
            f"error: {', '.join(missing)} must be set (no default tokens); "
            "for a throwaway local server use --dev",
            err=True,
        )
        raise typer.Exit(1)
    problems = settings.secret_problems()
    if problems:
        typer.echo(f"error: {'; '.join(problems)}", err=True)
        raise typer.Exit(1)
    return settings


def _dev_tokens() -> None:
    # Generated once, shown once, passed to workers through the environment only.
    shown = []
    for name in ("CLOUDBENCH_ADMIN_TOKEN", "CLOUDBENCH_RUNNER_TOKEN"):
        if not os.environ.get(name):
            os.environ[name] = secrets.token_urlsafe(32)
            shown.append(f"  {name}={os.environ[name]}")
    if shown and sys.stderr.isatty():
        typer.echo("development tokens (shown once, not stored):\n" + "\n".join(shown), err=True)
    elif shown:
        typer.echo("development tokens generated (not shown: stderr is not a terminal)", err=True)


def _upgrade_or_exit(url: str, revision: str = "head", down: bool = False) -> None:
    """Migrate; an unreachable or refusing database is one clear line, not a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from cloudbench.orchestrator.db import migrate as mig

    try:
        if down:
            mig.downgrade(url, revision)
        else:
            mig.upgrade(url, revision)
    except SQLAlchemyError as exc:
        where = make_url(url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        typer.echo(f"error: database {where} (CLOUDBENCH_DATABASE_URL): {reason}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int | None = typer.Option(
        None, min=1, help="Server processes [default: one per CPU on Postgres, 1 on SQLite]."
    ),
    dev: bool = typer.Option(False, help="Generate throwaway tokens if none are set."),
    migrate_first: bool = typer.Option(True, "--migrate/--no-migrate", help="Upgrade the DB."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    tls_cert: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Serve HTTPS only, with this certificate (PEM)."
    ),
    tls_key: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="The certificate's private key (PEM)."
    ),
) -> None:
    """Serve the HTTP API, storage URLs and dashboard (HTTPS with --tls-cert/--tls-key)."""
    import uvicorn

    if (tls_cert is None) != (tls_key is None):
        typer.echo("error: --tls-cert and --tls-key go together; give both or neither", err=True)
        raise typer.Exit(2)
    if dev:
        _dev_tokens()
    settings = _settings_or_exit()
    if not settings.public_url:
        scheme = "https" if tls_cert else "http"
        os.environ["CLOUDBENCH_PUBLIC_URL"] = f"{scheme}://{host}:{port}"
    if migrate_first:
        _upgrade_or_exit(settings.resolved_database_url())
    uvicorn.run(
        "cloudbench.orchestrator.cli:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers or default_workers(settings.resolved_database_url()),
        log_level=log_level,
        access_log=False,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )


@app.command()
def migrate(
    revision: str = typer.Argument("head", help="Target revision."),
    down: bool = typer.Option(False, help="Downgrade to the revision instead."),
) -> None:
    """Apply database migrations (Postgres or SQLite, from CLOUDBENCH_DATABASE_URL)."""
    url = OrchestratorSettings().resolved_database_url()
    if down:
        _upgrade_or_exit(url, "base" if revision == "head" else revision, down=True)
    else:
        _upgrade_or_exit(url, revision)
    typer.echo(f"database at {revision if not down else 'downgraded'}")


@app.command()
def sweep() -> None:
    """Retry or fail tasks silent for CLOUDBENCH_HEARTBEAT_TIMEOUT while a server was up."""
    from cloudbench.orchestrator.db.engine import make_engine, make_session_factory
    from cloudbench.orchestrator.maintenance import sweep_once

    settings = OrchestratorSettings()
    engine = make_engine(settings.resolved_database_url(), pool_size=2)
    result = sweep_once(
        make_session_factory(engine),
        settings.heartbeat_timeout,
        interval_seconds=settings.sweep_interval,
    )
    if not result.swept:
        typer.echo(
            "no server has been up for the heartbeat timeout: runner silence is not "
            "counted yet (an outage is not the runners' fault)"
        )
    typer.echo(
        f"timed out tasks in {len(result.timed_out_runs)} run(s); "
        f"finalized {len(result.finalized_runs)} run(s)"
    )
