from __future__ import annotations

import typer
from typer.testing import CliRunner

from cloudbench.runner.cli import runner_app


def _mounted() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        pass

    app.add_typer(runner_app, name="runner")
    return app


def test_mounts_as_single_command_with_env_vars() -> None:
    result = CliRunner().invoke(_mounted(), ["runner", "--help"])
    assert result.exit_code == 0
    assert "--shutdown-on-done" in result.output
    assert "CLOUDBENCH_PROVIDER" in result.output
    assert "--runner-token" not in result.output  # never a flag


def test_token_required_from_environment() -> None:
    result = CliRunner().invoke(_mounted(), ["runner"], env={"CLOUDBENCH_RUNNER_TOKEN": ""})
    assert result.exit_code == 2
    assert "CLOUDBENCH_RUNNER_TOKEN" in result.output
