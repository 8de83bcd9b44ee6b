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


def _run(*args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        _mounted(),
        ["runner", "--provider", "local", *args],
        env={"CLOUDBENCH_RUNNER_TOKEN": "t", **env},
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result
    return result.exit_code, result.output


def test_bad_slot_and_environment_options_are_one_line_errors() -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    code, out = _run("--slots", str(cores + 1))
    assert code == 2 and f"{cores + 1} slots requested" in out and "Traceback" not in out
    code, out = _run("--slots", "half")
    assert code == 2 and "slots" in out
    code, out = _run("--housekeeping-cpus", "first")
    assert code == 2 and "housekeeping_cpus" in out and "CPU list" in out
    code, out = _run("--pass-env", "RUBYOPT")
    assert code == 2 and "RUBYOPT may not be passed" in out
    code, out = _run("--ruby-image-digest", "latest")
    assert code == 2 and "ruby_image_digest" in out
    code, out = _run("--ruby-image", "Ruby:latest@sha256")
    assert code == 2 and "ruby_image: " in out and "without tag or digest" in out, out
    assert "Traceback" not in out
