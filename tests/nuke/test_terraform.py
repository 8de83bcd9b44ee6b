"""The Terraform wrapper, driven against a fake `terraform` executable on PATH.

The executable is a fake on purpose: a real terraform would download providers and call
AWS, which neither this machine nor a test may do. The fake records its argv, the names of
its environment variables and the TF_VAR_ values, and answers `output -json`.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from cloudbench.platform.terraform import Terraform, TerraformError, variables_env

SECRET = "runner-token-5f0c2d9e1b8a7c6d"

FAKE = """#!{python}
import json, os, sys
record = os.environ["FAKE_TF_RECORD"]
with open(record, "a") as out:
    out.write(json.dumps({{
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "env_names": sorted(os.environ),
        "tf_vars": {{k: v for k, v in os.environ.items() if k.startswith("TF_VAR_")}},
    }}) + "\\n")
command = sys.argv[1]
if os.environ.get("FAKE_TF_FAIL") == command:
    print("Error: fake failure in " + command, file=sys.stderr)
    sys.exit(1)
if command == "output":
    print(json.dumps({{
        "runner_token": {{"sensitive": True, "type": "string", "value": "{secret}"}},
        "bucket": {{"sensitive": False, "type": "string", "value": "cloudbench-results-1"}},
    }}))
else:
    print("fake terraform " + command + " done")
"""


@pytest.fixture
def fake_terraform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "terraform"
    script.write_text(FAKE.format(python=sys.executable, secret=SECRET), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    monkeypatch.delenv("FAKE_TF_FAIL", raising=False)
    return record


def _calls(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]


def _stack(tmp_path: Path) -> Terraform:
    workdir = tmp_path / "stack"
    workdir.mkdir(exist_ok=True)
    return Terraform(workdir, tmp_path / "logs" / "run-1" / "aws.log")


VARIABLES = {
    "run_id": "run-1",
    "runner_token": SECRET,
    "instances": 2,
    "instance_types": [{"instance_type": "c7g.large", "alias": "g3"}],
}


def test_full_cycle_keeps_secrets_off_argv_and_out_of_the_log(
    fake_terraform: Path, tmp_path: Path
) -> None:
    tf = _stack(tmp_path)
    tf.init()
    tf.apply(VARIABLES)
    outputs = tf.output()
    tf.destroy(VARIABLES)

    assert outputs == {"runner_token": SECRET, "bucket": "cloudbench-results-1"}
    calls = _calls(fake_terraform)
    assert [c["argv"][0] for c in calls] == ["init", "apply", "output", "destroy"]
    assert "-auto-approve" in calls[1]["argv"] and "-json" in calls[2]["argv"]
    for call in calls:
        assert not any(SECRET in arg for arg in call["argv"]), call["argv"]
        assert not any(arg.startswith("-var") for arg in call["argv"])
        assert call["cwd"] == str(tmp_path / "stack")
        assert "TF_IN_AUTOMATION" in call["env_names"]
    apply_vars = calls[1]["tf_vars"]
    assert apply_vars["TF_VAR_runner_token"] == SECRET
    assert apply_vars["TF_VAR_instances"] == "2"
    assert json.loads(apply_vars["TF_VAR_instance_types"]) == VARIABLES["instance_types"]
    log = tf.log_path.read_text(encoding="utf-8")
    assert "fake terraform apply done" in log
    assert SECRET not in log  # output -json is captured, not logged


def test_failure_raises_with_the_log_tail(
    fake_terraform: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TF_FAIL", "apply")
    tf = _stack(tmp_path)
    tf.init()
    with pytest.raises(TerraformError) as info:
        tf.apply(VARIABLES)
    assert info.value.command == "apply"
    assert info.value.returncode == 1
    assert "fake failure in apply" in info.value.log_tail
    assert SECRET not in info.value.log_tail


def test_missing_binary_is_a_terraform_error(tmp_path: Path) -> None:
    tf = Terraform(tmp_path, tmp_path / "tf.log", binary=str(tmp_path / "no-such-terraform"))
    with pytest.raises(TerraformError, match="init"):
        tf.init()
    assert "cannot run" in tf.log_tail()


def test_variables_env_encoding() -> None:
    env = variables_env({"a": "text", "b": 3, "c": True, "d": ["x"], "e": {"k": 1}})
    assert env == {
        "TF_VAR_a": "text",
        "TF_VAR_b": "3",
        "TF_VAR_c": "true",
        "TF_VAR_d": '["x"]',
        "TF_VAR_e": '{"k": 1}',
    }
