"""Secrets on disk are the owner's only (issue 25 item 11): real terraform, real files.

Terraform here is the real binary with its built-in `terraform_data` resource (no
provider is downloaded, nothing leaves the machine); the state it writes holds a
sensitive variable in plain text, as the meta stack's holds the tokens.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudbench.platform.stacks import AwsSettings, Stack
from cloudbench.platform.state import Session, write_private
from cloudbench.platform.terraform import Terraform

SECRET = "admin-token-0b6f1e2d3c4a5b6c7d8e9f"
MODULE = """
variable "admin_token" {
  type      = string
  sensitive = true
}
resource "terraform_data" "token" {
  input = var.admin_token
}
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual 022: what made state 0644 under 0755 folders."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CLOUDBENCH_HOME", str(home))
    return home


def test_terraform_state_is_owner_only(tmp_path: Path, loose_umask: None) -> None:
    workdir = tmp_path / "stack"
    workdir.mkdir(mode=0o755)
    (workdir / "main.tf").write_text(MODULE)
    tf = Terraform(workdir, tmp_path / "logs" / "meta.log")
    tf.init()
    tf.apply({"admin_token": SECRET})
    state = workdir / "terraform.tfstate"
    assert SECRET in state.read_text()  # what needs protecting
    assert mode(state) == 0o600
    assert mode(workdir) == 0o700
    assert mode(tf.log_path) == 0o600
    tf.apply({"admin_token": SECRET + "x"})  # a second apply leaves a backup
    assert mode(workdir / "terraform.tfstate.backup") == 0o600
    assert mode(state) == 0o600


def test_state_left_loose_by_an_older_version_is_tightened(tmp_path: Path) -> None:
    workdir = tmp_path / "stack"
    workdir.mkdir(mode=0o755)
    (workdir / "main.tf").write_text(MODULE)
    old = workdir / "terraform.tfstate"
    old.write_text('{"version": 4, "resources": []}')
    old.chmod(0o644)
    Terraform(workdir, tmp_path / "tf.log").init()
    assert mode(old) == 0o600 and mode(workdir) == 0o700


def test_stack_copies_and_state_files_are_private(
    tmp_path: Path, home: Path, loose_umask: None
) -> None:
    module = tmp_path / "module"
    module.mkdir()
    (module / "main.tf").write_text(MODULE)
    home.mkdir(mode=0o755)
    settings = AwsSettings(deployment="t")
    workdir = settings.root() / "meta"
    stack = Stack("meta", workdir, home / "logs" / "meta.log", settings, {"region": "x"})
    stack.prepare(module)
    assert mode(workdir) == 0o700 and mode(home) == 0o700
    assert mode(workdir / "vars.json") == 0o600
    session = Session.new(tmp_path / "state")
    session.save()
    assert mode(session.path) == 0o600 and mode(session.path.parent) == 0o700
    write_private(tmp_path / "elsewhere" / "tokens.json", "{}")
    assert mode(tmp_path / "elsewhere") == 0o700
