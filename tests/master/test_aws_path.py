"""`cloudbench run` on its AWS path, with a FAKE `terraform` executable.

The fake exists because neither a usable terraform (with providers) nor AWS is reachable
from the test machine. It is first on PATH and also named by CLOUDBENCH_AWS_TERRAFORM (a
real binary may sit in /usr/local/bin). It records argv, cwd, start/end times, the NAMES
of its environment variables and the values of non-secret TF_VAR_s to a JSONL file, and
answers `output -json` for meta with a real orchestrator process started here, so the
run itself (create, watch, stop, download, teardown) is real. The fake stacks launch
nothing; the test stops the run through the API once the stacks are applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import cloudbench
from cloudbench.master.client import OrchestratorClient
from cloudbench.platform.tls import make_certificate
from cloudbench.protocol import BenchmarkSettings
from cloudbench.runner.executors.base import ImageSharing
from cloudbench.runner.executors.docker import DockerExecutor
from cloudbench.runner.ruby_bench import prepare_source
from cloudbench.runner.selection import gemfile_dirs
from tests.master.conftest import FAKE_SUITE, Harness, fake_config, needs_ruby
from tests.moto_aws import aws_env, ec2_quotas, shared_moto
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import free_port
from tests.wheelhouse import wheelhouse_env

pytestmark = [pytest.mark.slow]

FAKE = r"""
import json, os, sys, time
start, cwd, args = time.time(), os.getcwd(), sys.argv[1:]
stack, code = os.path.basename(cwd), 0
if args[0] == "output":
    name = "FAKE_TF_OUTPUTS" if stack == "meta" else f"FAKE_TF_{stack.upper()}_OUTPUTS"
    values = json.load(open(os.environ[name])) if name in os.environ else {}
    print(json.dumps({k: {"value": v, "sensitive": "token" in k} for k, v in values.items()}))
elif args[0] == "apply" and stack != "meta":
    time.sleep(float(os.environ.get("FAKE_TF_SLEEP", "0")))
    if stack in os.environ.get("FAKE_TF_FAIL", "").split(","):
        message = "Error: creating EC2 Instance: UnauthorizedOperation (fake)"
        print(os.environ.get("FAKE_TF_ERROR", message), file=sys.stderr)
        code = 1
else:
    print(f"fake terraform {args[0]}: ok")
tf_vars = {k: v for k, v in os.environ.items()
           if k.startswith("TF_VAR_") and "token" not in k and k != "TF_VAR_tls_key"}
record = dict(argv=sys.argv, cwd=cwd, stack=stack, start=start, end=time.time(), code=code,
              env_names=sorted(os.environ), tf_vars=tf_vars)
with open(os.environ["FAKE_TF_LOG"], "a") as log:
    log.write(json.dumps(record) + "\n")
sys.exit(code)
"""

SETTINGS = {
    "CLOUDBENCH_AWS_REGION": "eu-west-1",
    "CLOUDBENCH_AWS_ALLOWED_HTTP_CIDRS": "203.0.113.0/24",
    "CLOUDBENCH_AWS_BASTION_SSH_CIDR": "203.0.113.7/32",
    "CLOUDBENCH_AWS_SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake test@example",
}
WHEEL = f"cloudbench-{cloudbench.__version__}-py3-none-any.whl"


class FakeTerraform:
    def __init__(self, tmp: Path, orch: OrchestratorProcess, wheel: Path) -> None:
        self.orch, self.log, self.wheel = orch, tmp / "fake-terraform.jsonl", wheel
        bin_dir = tmp / "fakebin"
        bin_dir.mkdir()
        self.binary = bin_dir / "terraform"
        self.binary.write_text(f"#!{sys.executable}\n{FAKE}")
        self.binary.chmod(0o755)
        self.outputs = tmp / "outputs.json"
        self.outputs.write_text(
            json.dumps(
                {
                    "orchestrator_url": orch.url,
                    "admin_token": orch.admin_token,
                    "runner_token": orch.runner_token,
                    "bucket": "cb-results-fake",
                    "region": "eu-west-1",
                    "subnet_id": "subnet-fake",
                    "vpc_id": "vpc-fake",
                    "orchestrator_private_url": "http://10.0.1.10:8000",
                    "runner_nat_security_group_id": "sg-0fake0runner0nat",
                    "zone_subnets": {
                        "eu-west-1a": "subnet-fake",
                        "eu-west-1b": "subnet-fake-b",
                        "eu-west-1c": "subnet-fake-c",
                    },
                }
            )
        )
        # EC2's answers before any apply (zones, quotas): moto's server, set by the fixture.
        self.aws_env: dict[str, str] = {}
        if orch.tls is not None:  # the deployment's certificate, as its output carries it
            outputs = json.loads(self.outputs.read_text())
            outputs["orchestrator_tls_certificate"] = orch.tls[0].read_text()
            outputs["orchestrator_private_url"] = "https://10.0.1.10:8000"
            self.outputs.write_text(json.dumps(outputs))

    def client(self) -> OrchestratorClient:
        cert = self.orch.tls[0].read_text() if self.orch.tls else None
        return OrchestratorClient(self.orch.url, self.orch.admin_token, cert_pem=cert)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.binary.parent}{os.pathsep}{os.environ['PATH']}",
            "CLOUDBENCH_AWS_TERRAFORM": str(self.binary),
            # The master's own wheel, which the orchestrator (started here) serves.
            "CLOUDBENCH_AWS_WHEEL": str(self.wheel),
            # The VMs' wheelhouse from local wheels, never PyPI (tests/wheelhouse.py).
            **wheelhouse_env(),
            "FAKE_TF_LOG": str(self.log),
            "FAKE_TF_OUTPUTS": str(self.outputs),
            **self.aws_env,
            **extra,
        }

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def find(self, command: str, stack: str) -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["argv"][1] == command and c["stack"] == stack]


def fake_terraform(
    tmp_path: Path, sqlite_url: str, orchestrator_factory: OrchestratorFactory, tls: bool = False
) -> FakeTerraform:
    """A fake terraform whose 'deployment' is an in-process orchestrator serving a wheel
    (the bytes the master compares with what it ships); with `tls`, over HTTPS only with
    a self-signed certificate its outputs carry, as a real deployment's do."""
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / WHEEL).write_bytes(b"a wheel stands in here: only its bytes are compared")
    pair = None
    if tls:
        cert, key = make_certificate()
        pair = (tmp_path / "orchestrator-cert.pem", tmp_path / "orchestrator-key.pem")
        pair[0].write_text(cert)
        pair[1].write_text(key)
    orch = orchestrator_factory(
        sqlite_url, server="in_process", extra_env={"CLOUDBENCH_DIST_DIR": str(dist)}, tls=pair
    )
    fake = FakeTerraform(tmp_path, orch, dist / WHEEL)
    # EC2 and Service Quotas (zones, quotas) answer from moto, reset for each test; the
    # run's region is CLOUDBENCH_AWS_REGION, not this default.
    fake.aws_env = aws_env(shared_moto(), "us-east-1")
    return fake


@pytest.fixture
def fake(
    tmp_path: Path, sqlite_url: str, orchestrator_factory: OrchestratorFactory
) -> FakeTerraform:
    return fake_terraform(tmp_path, sqlite_url, orchestrator_factory)


def _aws_config(local: bool) -> dict[str, Any]:
    config = fake_config(["a"] if local else [], 1, ["fib"])
    config["aws"] = [{"instance_type": "t3.micro", "alias": "t3"}]
    return config


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def _assert_wheelhouse(tar: Path, fake: FakeTerraform, runner: bool = False) -> None:
    """The master's own wheel, pinned by its hash, beside every locked dependency (the
    orchestrator's) or only those the runner imports (the runners')."""
    digest = hashlib.sha256(fake.wheel.read_bytes()).hexdigest()
    with tarfile.open(tar) as archive:
        pins = archive.extractfile("requirements.txt").read().decode()  # type: ignore[union-attr]
        assert archive.extractfile(WHEEL).read() == fake.wheel.read_bytes()  # type: ignore[union-attr]
        wheels = [n for n in archive.getnames() if n.endswith(".whl")]
    assert f"cloudbench=={cloudbench.__version__} --hash=sha256:{digest}" in pins
    names = {line.split("==")[0] for line in pins.splitlines()}
    if runner:
        assert len(wheels) == len(names) < 40 and "docker" in names and "scipy" not in names
    else:
        assert len(wheels) == len(names) > 50 and {"scipy", "fastapi"} <= names


def _no_secret_anywhere(fake: FakeTerraform, *dirs: Path) -> None:
    secrets = (fake.orch.admin_token, fake.orch.runner_token)
    for call in fake.calls():
        assert not any(s in " ".join(call["argv"]) for s in secrets), call["argv"]
    for folder in dirs:
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(s.encode() in data for s in secrets), path


@pytest.fixture
def fake_tls(
    tmp_path: Path, sqlite_url: str, orchestrator_factory: OrchestratorFactory
) -> FakeTerraform:
    return fake_terraform(tmp_path, sqlite_url, orchestrator_factory, tls=True)


@needs_ruby
def test_meta_first_stacks_in_parallel_right_variables_no_secrets(
    harness: Harness, fake_tls: FakeTerraform
) -> None:
    # The whole run (wait, version check, create, watch, stop, download) over HTTPS,
    # trusting the deployment's certificate alone.
    fake = fake_tls
    harness.start(
        harness.config(_aws_config(local=True)), environment=fake.env(FAKE_TF_SLEEP="1", **SETTINGS)
    )
    run_id = harness.run_id()
    harness.wait_for(lambda: fake.find("apply", "aws") and fake.find("apply", "local"))
    with fake.client() as api:
        api.stop_run(run_id)
    code, _out, err = harness.wait()
    assert code in (0, 2), err
    # What the run leaves up, what it costs, how to remove it (in the run's region).
    assert (
        "still up: AWS meta deployment 'default' in eu-west-1 (orchestrator t3.small, bastion "
        "t3.micro, elastic IP + 1 public IPv4, 38 GiB gp3, bucket cb-results-fake): about "
        "0.0454 USD/h, 33.12 USD per month plus S3 storage; later runs reuse it; remove it: "
        "cloudbench nuke --provider aws --region eu-west-1"
    ) in err, err
    assert "aws zone for t3.micro: eu-west-1a" in err, err[:3000]

    meta = [c["argv"][1] for c in fake.calls() if c["stack"] == "meta"]
    assert meta[:3] == ["init", "apply", "output"] and "destroy" not in meta
    meta_apply = fake.find("apply", "meta")[0]
    assert json.loads(meta_apply["tf_vars"]["TF_VAR_allowed_http_cidrs"]) == ["203.0.113.0/24"]
    assert meta_apply["tf_vars"]["TF_VAR_region"] == "eu-west-1"
    # The deployment's secrets are the master's, chosen once: TF_VAR_s only, never vars.json.
    secret_vars = {"TF_VAR_admin_token", "TF_VAR_runner_token", "TF_VAR_postgres_password"}
    assert secret_vars | {"TF_VAR_tls_key", "TF_VAR_tls_cert"} <= set(meta_apply["env_names"])
    saved = json.loads((harness.home / "terraform/default/meta/vars.json").read_text())
    assert not {"admin_token", "runner_token", "postgres_password", "tls_key"} & set(saved)
    # The master made the deployment's key and certificate once, kept with its secrets.
    chosen = json.loads((harness.home / "terraform/default/meta/secrets.json").read_text())
    assert chosen["tls_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert meta_apply["tf_vars"]["TF_VAR_tls_cert"] == chosen["tls_cert"]
    assert saved["orchestrator_wheel"].endswith(WHEEL) and len(saved["suffix"]) == 8
    assert saved["wheelhouse_arches"] == ["x86_64"]
    _assert_wheelhouse(harness.home / "terraform/default/meta/dist/wheelhouse-x86_64.tar", fake)
    aws, local = fake.find("apply", "aws")[0], fake.find("apply", "local")[0]
    assert meta_apply["end"] <= min(aws["start"], local["start"])
    assert aws["start"] < local["end"] and local["start"] < aws["end"]  # overlap
    assert max(aws["end"], local["end"]) - min(aws["start"], local["start"]) < 2.0

    tf = aws["tf_vars"]
    assert tf["TF_VAR_run_id"] == str(run_id) and tf["TF_VAR_instances"] == "1"
    assert json.loads(tf["TF_VAR_instance_types"]) == [
        {
            "instance_type": "t3.micro",
            "alias": "t3",
            "instances": 1,
            "capacity": "on-demand",
            "max_price": None,
            "subnet_id": "subnet-fake",
        }
    ]
    # Runners in the VPC use the orchestrator's private address, pinning its certificate.
    assert tf["TF_VAR_orchestrator_url"] == "https://10.0.1.10:8000"
    assert fake.orch.tls is not None
    assert tf["TF_VAR_orchestrator_tls_cert"] == fake.orch.tls[0].read_text()
    assert (tf["TF_VAR_subnet_id"], tf["TF_VAR_region"]) == ("subnet-fake", "eu-west-1")
    assert "TF_VAR_runner_token" in aws["env_names"]
    assert json.loads(tf["TF_VAR_wheelhouse_arches"]) == ["x86_64"]
    aws_dir = harness.home / f"terraform/default/runs/{run_id}/aws"
    _assert_wheelhouse(aws_dir / "wheelhouse-x86_64.tar", fake, runner=True)
    assert local["tf_vars"] == {"TF_VAR_run_id": str(run_id)}
    assert "TF_VAR_runner_token" not in local["env_names"]

    # Teardown destroyed both provider stacks, after their applies.
    for stack in ("aws", "local"):
        destroy = fake.find("destroy", stack)
        assert destroy and destroy[0]["start"] >= aws["end"], stack
    assert (harness.tmp / "logs" / str(run_id) / "aws.log").is_file()
    _no_secret_anywhere(fake, harness.home, harness.state, harness.tmp / "logs")
    harness.assert_nothing_left()


def test_stack_failure_shows_log_tail_and_offers_nuke(
    harness: Harness, fake: FakeTerraform
) -> None:
    harness.start(
        harness.config(_aws_config(local=False)),
        environment=fake.env(FAKE_TF_FAIL="aws", **SETTINGS),
    )
    code, out, err = harness.wait()
    assert code == 1, err
    assert "stack aws: terraform apply failed with exit code 1" in err
    assert "UnauthorizedOperation (fake)" in err  # the log tail
    assert "cloudbench nuke --provider aws --region eu-west-1 --run-id" in err, err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "error"  # stdout stays JSON
    assert fake.find("destroy", "aws"), "the failed stack was not destroyed"
    assert not harness.sessions()
    _no_secret_anywhere(fake, harness.home, harness.state, harness.tmp / "logs")


def test_each_type_goes_to_the_subnet_of_a_zone_that_offers_it(
    harness: Harness, fake: FakeTerraform
) -> None:
    """eu-west-1a offers no a1.large (EC2's offerings, as moto has them): its runners go to
    the meta subnet of eu-west-1b; c7g.large stays in the orchestrator's zone."""
    config = _aws_config(local=False)
    config["aws"] = [
        {"instance_type": "a1.large", "alias": "a1"},
        {"instance_type": "c7g.large", "alias": "c7g"},
    ]
    harness.start(harness.config(config), environment=fake.env(**SETTINGS))
    run_id = harness.run_id()
    harness.wait_for(lambda: fake.find("apply", "aws"))
    with OrchestratorClient(fake.orch.url, fake.orch.admin_token) as api:
        api.stop_run(run_id)
    code, _out, err = harness.wait()
    assert code in (0, 2), err
    types = json.loads(fake.find("apply", "aws")[0]["tf_vars"]["TF_VAR_instance_types"])
    subnets = {t["alias"]: t["subnet_id"] for t in types}
    assert subnets == {"a1": "subnet-fake-b", "c7g": "subnet-fake"}
    assert "aws zone for a1.large: eu-west-1b" in err


@pytest.mark.parametrize(
    ("instance_type", "quota", "line"),
    [
        (
            "zz9.large",
            64,
            "error: aws: instance type zz9.large is not offered in any "
            "availability zone of eu-west-1; pick another type or region (CLOUDBENCH_AWS_REGION)",
        ),
        (
            "c7g.large",
            4,
            "error: aws: quota L-1216C47A (Running On-Demand Standard (A, C, D, "
            "H, I, M, R, T, Z) instances vCPUs) in eu-west-1 is 4; 0 in use + 6 for this run = 6",
        ),
    ],
)
def test_a_type_no_zone_offers_or_too_small_a_quota_is_refused_before_terraform(
    harness: Harness,
    fake: FakeTerraform,
    monkeypatch: pytest.MonkeyPatch,
    instance_type: str,
    quota: float,
    line: str,
) -> None:
    ec2_quotas(monkeypatch, {"L-1216C47A": quota})
    config = _aws_config(local=False)
    config["aws"] = [{"instance_type": instance_type, "alias": "x"}]
    result = harness.cli("run", str(harness.config(config)), **fake.env(**SETTINGS))
    assert result.returncode == 1, result.stdout + result.stderr
    assert line in result.stderr, result.stderr
    assert not fake.calls() and not harness.sessions()


def test_missing_settings_are_named(harness: Harness, fake: FakeTerraform) -> None:
    path = harness.config(_aws_config(local=False))
    result = harness.cli("run", str(path), **fake.env())
    assert result.returncode == 1
    assert "CLOUDBENCH_AWS_ALLOWED_HTTP_CIDRS" in result.stderr
    assert not fake.calls()


def test_a_deployment_serving_another_build_is_refused(
    harness: Harness, fake: FakeTerraform
) -> None:
    other = fake.wheel.with_name("other") / WHEEL
    other.parent.mkdir()
    other.write_bytes(b"another build of the same version")
    env = {**fake.env(**SETTINGS), "CLOUDBENCH_AWS_WHEEL": str(other)}
    harness.start(harness.config(_aws_config(local=False)), environment=env)
    code, _out, err = harness.wait()
    assert code == 1, err
    version = cloudbench.__version__
    line = f"runs cloudbench {version}, this master is cloudbench {version} (another build"
    assert line in err, err
    assert not fake.find("apply", "aws")


@needs_ruby
def test_reuse_orchestrator_runs_local_runners_against_it(
    harness: Harness, fake: FakeTerraform
) -> None:
    """Phase 3: the orchestrator 'in AWS', runners on this machine; nothing is applied."""
    (harness.home / "terraform" / "default" / "meta").mkdir(parents=True)
    harness.start(
        harness.config(fake_config(["a"], 2, ["fib"])),
        "--reuse-orchestrator",
        environment=fake.env(),
    )
    code, out, err = harness.wait()
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["tasks"]["completed"] == 2
    assert [c["argv"][1] for c in fake.calls()] == ["output"]
    harness.assert_nothing_left()


def test_nuke_destroys_provider_stacks_then_meta(harness: Harness, fake: FakeTerraform) -> None:
    root = harness.home / "terraform" / "default"
    for stack in ("runs/7/aws", "runs/7/local", "meta"):
        (root / stack).mkdir(parents=True)
        (root / stack / "vars.json").write_text(json.dumps({"run_id": "7"}))
    (root / "runs/7/aws/variables.tf").write_text('variable "runner_token" {}')
    # The sweep that follows runs against moto's standalone server (empty account).
    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/moto-api/")
        env = fake.env(
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="fake",
            AWS_SECRET_ACCESS_KEY="fake",
        )
        result = harness.cli("nuke", "--provider", "aws", "--yes", **env)
    finally:
        moto.terminate()
        moto.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    destroys = [c for c in fake.calls() if c["argv"][1] == "destroy"]
    assert [c["stack"] for c in destroys] == ["aws", "local", "meta"], result.stdout + result.stderr
    assert "TF_VAR_runner_token" in destroys[0]["env_names"]
    assert not root.joinpath("meta").exists() and not root.joinpath("runs/7").exists()


@pytest.mark.container
def test_shared_benchmark_image_is_built_once_and_a_vm_loads_it(
    harness: Harness,
    fake: FakeTerraform,
    container_engine: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CLOUDBENCH_AWS_SHARE_IMAGE: the master builds the image from the suite it ships and
    puts it beside the stack; a 'VM' (the runner's executor on the unpacked suite, with the
    stack's values, the image gone from the engine) loads it instead of building."""
    config = _aws_config(local=False)
    config["ruby_version"] = "3.1"  # the stand-in ruby:3.1 image
    env = fake.env(CLOUDBENCH_AWS_SHARE_IMAGE="true", **SETTINGS)
    harness.start(harness.config(config), "--ruby-bench", str(FAKE_SUITE), environment=env)
    run_id = harness.run_id()
    stack = harness.home / f"terraform/default/runs/{run_id}/aws"
    harness.wait_for(lambda: fake.find("apply", "aws"), timeout=600)
    shipped = json.loads(fake.find("apply", "aws")[0]["tf_vars"]["TF_VAR_benchmark_image"])
    kept = tmp_path / "kept"
    kept.mkdir()
    archive = Path(shutil.copy(stack / shipped["file"], kept))
    with tarfile.open(stack / "ruby-bench.tar.gz") as tar:
        tar.extractall(kept / "ruby-bench", filter="data")  # as the VM's user-data does
    with OrchestratorClient(fake.orch.url, fake.orch.admin_token) as api:
        api.stop_run(run_id)
    code, out, err = harness.wait()
    assert code in (0, 2), err
    assert shipped["arch"] == "x86_64" and shipped["ruby_image_digest"].startswith("sha256:")
    assert archive.name == f"benchmark-{hashlib.sha256(archive.read_bytes()).hexdigest()}.tar"
    assert "benchmark image for x86_64: built in" in out + err

    source = prepare_source(str(kept / "ruby-bench"), "unused", tmp_path / "cache")
    images = ImageSharing(archive=archive)
    vm = DockerExecutor(
        source, tmp_path / "vm", base_digest=shipped["ruby_image_digest"], images=images
    )
    selection = BenchmarkSettings.model_validate(config["benchmarks"])
    tag = vm.image_tag("3.1", shipped["ruby_image_digest"], gemfile_dirs(source.path, selection))
    subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, check=True)
    try:
        with caplog.at_level(logging.INFO, logger="cloudbench.runner.executors"):
            loaded = vm.provision("3.1", selection)
        assert loaded.image_tag == tag
        said = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("loaded benchmark image") for m in said), said
        assert not any(m.startswith("building benchmark image") for m in said), said
    finally:
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, check=False)
        vm.close()


def test_shared_image_without_the_shipped_suite_is_one_line(
    harness: Harness, fake: FakeTerraform
) -> None:
    path = harness.config(_aws_config(local=False))
    result = harness.cli("run", str(path), **fake.env(CLOUDBENCH_AWS_SHARE_IMAGE="1", **SETTINGS))
    assert result.returncode == 1, result.stderr
    assert "CLOUDBENCH_AWS_SHARE_IMAGE needs --ruby-bench" in result.stderr
    assert "Traceback" not in result.stderr and not fake.calls()
