"""A thin, dependency-free wrapper around the `terraform` command line.

Every input variable travels as a `TF_VAR_<name>` environment variable, never as `-var`
on the command line: argv is visible to every user of the machine (ps, /proc) and ends up
in logs, the environment of a child process is not. Output values are parsed from
`terraform output -json` and are never written to the log, because outputs include
sensitive values (tokens) in plain text.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

TAIL_LINES = 40


STATE_PATTERNS = ("*.tfstate", "*.tfstate.*", "terraform.tfstate.d/**/*", ".terraform/*.tfstate")


def lock_down(workdir: Path) -> None:
    """The working copy 0700 and its state files 0600: they hold tokens and passwords in
    plain text (Terraform writes them with the caller's umask, 0644 by default)."""
    if not workdir.is_dir():
        return
    workdir.chmod(0o700)
    for pattern in STATE_PATTERNS:
        for path in workdir.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.chmod(0o600)


class TerraformError(RuntimeError):
    """A terraform command failed; `log_tail` holds the end of its log."""

    def __init__(self, command: str, returncode: int, log_tail: str) -> None:
        super().__init__(f"terraform {command} failed with exit code {returncode}")
        self.command = command
        self.returncode = returncode
        self.log_tail = log_tail


def encode_variable(value: Any) -> str:
    """Encode a value the way Terraform parses TF_VAR_ variables.

    Strings are taken literally; everything else (numbers, bools, lists, objects) is parsed
    as an HCL expression, and JSON is a valid HCL expression for those.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value)


def variables_env(variables: Mapping[str, Any]) -> dict[str, str]:
    """Map Terraform variable names to their TF_VAR_ environment variables."""
    return {f"TF_VAR_{name}": encode_variable(value) for name, value in variables.items()}


class Terraform:
    """Run terraform in one module directory, appending all its output to one log file."""

    def __init__(
        self,
        workdir: Path | str,
        log_path: Path | str,
        *,
        binary: str = "terraform",
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.log_path = Path(log_path)
        self.binary = binary
        self.base_env = dict(os.environ if env is None else env)
        self.timeout = timeout

    def init(self) -> None:
        """`terraform init`, idempotent; safe to call before every apply/destroy."""
        self._run(["init", "-input=false", "-no-color"], "init")

    def apply(
        self, variables: Mapping[str, Any] | None = None, targets: Sequence[str] = ()
    ) -> None:
        """`terraform apply -auto-approve` with variables passed through the environment;
        `targets`: only these resource addresses (-target), e.g. replacement VMs."""
        args = ["apply", "-input=false", "-no-color", "-auto-approve"]
        self._run(args + [f"-target={t}" for t in targets], "apply", variables)

    def destroy(self, variables: Mapping[str, Any] | None = None) -> None:
        """`terraform destroy -auto-approve`; variables are still required to evaluate config."""
        self._run(["destroy", "-input=false", "-no-color", "-auto-approve"], "destroy", variables)

    def output(self) -> dict[str, Any]:
        """Return every output as name -> value (sensitive ones included, unredacted)."""
        stdout = self._run(["output", "-no-color", "-json"], "output", capture=True)
        raw = json.loads(stdout or "{}")
        if not isinstance(raw, dict):
            raise TerraformError("output", 0, "output -json did not return an object")
        return {name: entry.get("value") for name, entry in raw.items()}

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        """The last `lines` lines of the log, for error reports."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _env(self, variables: Mapping[str, Any] | None) -> dict[str, str]:
        env = dict(self.base_env)
        env["TF_IN_AUTOMATION"] = "1"
        env["TF_INPUT"] = "0"
        env.update(variables_env(variables or {}))
        return env

    def _run(
        self,
        args: Sequence[str],
        name: str,
        variables: Mapping[str, Any] | None = None,
        *,
        capture: bool = False,
    ) -> str:
        argv = [self.binary, *args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logger.info("terraform %s in %s", name, self.workdir)
        lock_down(self.workdir)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        try:
            with os.fdopen(fd, "a", encoding="utf-8") as log:
                log.write(f"$ {' '.join(argv)}\n")
                log.flush()
                proc = self._spawn(argv, name, self._env(variables), log, capture)
        finally:
            lock_down(self.workdir)
        if proc.returncode != 0:
            raise TerraformError(name, proc.returncode, self.log_tail())
        return proc.stdout if capture else ""

    def _spawn(
        self, argv: list[str], name: str, env: dict[str, str], log: IO[str], capture: bool
    ) -> subprocess.CompletedProcess[str]:
        # For `output` stdout carries secrets: capture it, log only stderr.
        stdout: int | IO[str] = subprocess.PIPE if capture else log
        try:
            return subprocess.run(
                argv,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=log,
                text=True,
                timeout=self.timeout,
                check=False,
                umask=0o077,  # state, backups, lock and plugin files: owner only
            )
        except subprocess.TimeoutExpired:
            message, cause = f"terraform {name} timed out after {self.timeout}s", None
        except OSError as exc:
            message, cause = f"cannot run {self.binary}: {exc}", exc
        log.write(message + "\n")
        log.flush()
        raise TerraformError(name, -1, self.log_tail()) from cause
