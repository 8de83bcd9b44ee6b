"""Static checks of infrastructure/: parsing, module layout, pinning, tags, user-data."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hcl2.api import load as load_hcl

from cloudbench.platform.tls import TLS_NAME, make_certificate

INFRA = Path(__file__).resolve().parents[2] / "infrastructure"
MODULES = [
    INFRA / "meta",
    INFRA / "providers" / "aws",
    INFRA / "providers" / "azure",
    INFRA / "providers" / "local",
]
MODULE_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
TF_FILES = sorted(INFRA.rglob("*.tf"))
SAMPLE_TOKEN = "tok-3b1f9c2e8d7a6f5e4d3c2b1a0f9e8d7c"


def _one(value: Any) -> Any:
    """python-hcl2 wraps attribute values and blocks in lists; unwrap single items."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = load_hcl(handle)
    return parsed


def _module(module: Path) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(module.glob("*.tf")):
        for key, blocks in _load(path).items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def _resources(module: Path) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for block in _module(module).get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                found.append((rtype, name, body))
    return found


def test_there_is_terraform_to_check() -> None:
    assert len(TF_FILES) >= 12


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(_load(path), dict)


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(INFRA)))
def test_module_layout_and_pinning(module: Path) -> None:
    for name in MODULE_FILES:
        assert (module / name).is_file(), f"{module.name} lacks {name}"
    terraform = _one(_module(module)["terraform"])
    assert ">=" in _one(terraform["required_version"])
    providers = _one(terraform["required_providers"])
    assert providers, "required_providers is empty"
    for name, spec in providers.items():
        spec = _one(spec)
        assert "/" in spec["source"], name
        assert re.match(r"^(~>|=|>=)\s*\d+\.\d+", spec["version"]), f"{name} not pinned"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_variable_is_typed_and_described(module: Path) -> None:
    variables = _module(module).get("variable", [])
    assert variables
    for block in variables:
        for name, body in block.items():
            assert "type" in body, f"{name} has no type"
            assert len(_one(body.get("description", ""))) > 10, f"{name} has no description"


def _default_tags(module: Path) -> dict[str, str]:
    provider = _one(_one(_module(module)["provider"])["aws"])
    return dict(_one(_one(provider["default_tags"])["tags"]))


def test_provider_stack_tags_everything_by_default() -> None:
    module = INFRA / "providers" / "aws"
    assert _default_tags(module) == {"Project": "cloudbench", "RunId": "${var.run_id}"}
    for rtype, name, body in _resources(module):
        tags = _one(body.get("tags", {})) or {}
        # Resource tags may add to the default tags, never replace ours.
        assert not {"Project", "RunId"} & set(tags), f"{rtype}.{name} overrides tags"
    instance = next(b for t, _, b in _resources(module) if t == "aws_instance")
    assert _one(instance["volume_tags"]) == {"Project": "cloudbench", "RunId": "${var.run_id}"}
    assert _one(instance["instance_initiated_shutdown_behavior"]) == "terminate"


def test_meta_stack_tags_and_hardening() -> None:
    module = INFRA / "meta"
    assert _default_tags(module) == {"Project": "cloudbench", "Stack": "meta"}
    instances = [b for t, _, b in _resources(module) if t == "aws_instance"]
    assert len(instances) == 2
    for body in instances:
        assert _one(_one(body["metadata_options"])["http_tokens"]) == "required"
        assert _one(_one(body["root_block_device"])["encrypted"]) is True
    bastion_cidr = next(
        b for blk in _module(module)["variable"] for n, b in blk.items() if n == "bastion_ssh_cidr"
    )
    assert "default" not in bastion_cidr


def test_outputs_of_meta() -> None:
    outputs = {n: b for blk in _module(INFRA / "meta")["output"] for n, b in blk.items()}
    expected = {"orchestrator_url", "admin_token", "runner_token", "bucket", "region"}
    assert expected | {"bastion_ssh_command"} <= set(outputs)
    assert _one(outputs["admin_token"]["sensitive"]) is True
    assert _one(outputs["runner_token"]["sensitive"]) is True


# --- the README of each stack ---------------------------------------------------------------


def _readme_rows(module: Path, heading: str) -> dict[str, str]:
    """Rows of the table under `## heading` in the module's README: name -> its cells."""
    readme = module / "README.md"
    assert readme.is_file(), f"{module.relative_to(INFRA)} has no README.md"
    section = readme.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)
    assert len(section) == 2, f"{readme} has no '## {heading}' section"
    rows = {}
    for line in section[1].split("\n## ", 1)[0].splitlines():
        match = re.match(r"^\| `([a-z0-9_]+)`[^|]*\|(.*)\|$", line)
        if match:
            # Markdown escapes undone: the cells then read as variables.tf has them.
            rows[match.group(1)] = html.unescape(match.group(2).replace("\\|", "|"))
    return rows


def _blocks(module: Path, kind: str) -> dict[str, dict[str, Any]]:
    return {n: b for blk in _module(module).get(kind, []) for n, b in blk.items()}


def _description(body: dict[str, Any]) -> str:
    # python-hcl2 keeps HCL's escaped quotes.
    return str(_one(body["description"])).replace('\\"', '"')


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(INFRA)))
def test_readme_lists_every_input_and_output_as_the_module_has_it(module: Path) -> None:
    variables, outputs = _blocks(module, "variable"), _blocks(module, "output")
    inputs = _readme_rows(module, "Inputs")
    assert set(inputs) == set(variables), "README inputs differ from variables.tf"
    for name, body in variables.items():
        row = inputs[name]
        assert _description(body) in row, f"README row of {name} lacks: {_description(body)}"
        required = "default" not in body
        assert ("| required |" in row) == required, f"README row of {name}: default/required"
    rows = _readme_rows(module, "Outputs")
    assert set(rows) == set(outputs), "README outputs differ from outputs.tf"
    for name, body in outputs.items():
        assert _description(body) in rows[name], f"README row of output {name} is stale"
    assert "\n## What it costs while up\n" in (module / "README.md").read_text()


# --- user-data ----------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"(\$\$\{)|\$\{([^}]*)\}|(%\{)")


def render_template(text: str, variables: dict[str, Any]) -> str:
    """Enough of Terraform's templatefile for our templates: ${name} and the $${ escape.

    Anything else (expressions, %{ } directives) fails, keeping the templates simple.
    """

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "${"
        if match.group(3):
            raise AssertionError("template directives are not supported")
        name = match.group(2)
        if name not in variables:
            raise AssertionError(f"template uses ${{{name}}}, which is not passed")
        return str(variables[name])

    return _PLACEHOLDER.sub(substitute, text)


def _templatefile_keys(main_tf: Path, template: str) -> set[str]:
    text = main_tf.read_text(encoding="utf-8")
    start = text.index(f"templates/{template}")
    block = text[start : text.index("})", start)]
    return set(re.findall(r"^\s+(\w+)\s+=", block, flags=re.MULTILINE))


def _templatefile_args(main_tf: Path, template: str) -> str:
    text = main_tf.read_text(encoding="utf-8")
    start = text.index(f"templates/{template}")
    return text[start : text.index("})", start)]


def _bash_syntax_ok(script: str) -> None:
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


# A deployment's certificate and key, as the master makes them (platform/tls.py).
TLS_CERT, TLS_KEY = make_certificate()
RUNNER_VARS = {
    "max_lifetime_minutes": 90,
    "orchestrator_url": "http://10.42.0.10:8000",
    "region": "eu-central-1",
    "token_parameter": "/cloudbench/runs/r42/runner-token",
    "run_id": "r42",
    "instance_type": "c7g.large",
    "alias": "graviton3",
    "debug": "false",
    "heartbeat_interval": 30,
    "bucket": "cloudbench-results-abcd1234",
    "ruby_bench_key": "runs/r42/ruby-bench.tar.gz",
    "tls_cert": TLS_CERT.strip(),
    "tls_name": TLS_NAME,
    "wheelhouse_key": "runs/r42/wheelhouse-arm64.tar",
    "image_key": "runs/r42/benchmark-" + "ab" * 32 + ".tar",
    "ruby_image_digest": "sha256:" + "cd" * 32,
}


def test_runner_user_data_renders_the_runner_command() -> None:
    module = INFRA / "providers" / "aws"
    template = "runner-user-data.sh.tftpl"
    assert _templatefile_keys(module / "main.tf", template) == set(RUNNER_VARS)
    text = (module / "templates" / template).read_text(encoding="utf-8")
    script = render_template(text, RUNNER_VARS)
    _bash_syntax_ok(script)
    commands = [ln for ln in script.splitlines() if ln.strip() and not ln.startswith("#")]
    # The hard lifetime limit comes before anything that could fail or hang.
    assert commands[0].startswith("shutdown -h +90 ")
    # HTTPS with the pinned certificate: curl --cacert and the runner's CA file,
    # under the certificate's name mapped to the orchestrator's address.
    assert "ORCHESTRATOR='http://10.42.0.10:8000'" in script
    assert f"TLS_CERT='{RUNNER_VARS['tls_cert']}'" in script
    assert f'echo "$ORCHESTRATOR_ADDRESS {TLS_NAME}" >>/etc/hosts' in script
    assert f'ORCHESTRATOR="https://{TLS_NAME}:$ORCHESTRATOR_PORT"' in script
    assert '"${CURL_TLS[@]}" -K -' in script
    assert "--trusted-host" not in script and "--insecure" not in script
    # The runner: the master's wheelhouse from the bucket, every file pinned by its hash,
    # nothing from an index, nothing resolved (only the listed files).
    assert "'cloudbench-results-abcd1234' 'runs/r42/wheelhouse-arm64.tar'" in script
    assert "--no-index --no-deps --require-hashes" in script.replace("\\\n", " ")
    assert '-r "$WHEELHOUSE/requirements.txt"' in script and "/dist/" not in script
    # The run's benchmark image, when the master shipped one: loaded, not built.
    assert "IMAGE_KEY='runs/r42/benchmark-" in script
    assert 'export CLOUDBENCH_IMAGE_ARCHIVE="$IMAGE_FILE"' in script
    assert "RUBY_IMAGE_DIGEST='sha256:cdcd" in script
    # The shipped ruby-bench comes from the bucket; nothing clones it.
    assert "export CLOUDBENCH_RUBY_BENCH=/opt/cloudbench/ruby-bench" in script
    assert "git clone" not in script
    joined = script.replace("\\\n", " ")
    assert re.search(r'cloudbench" runner .*--shutdown-on-done', joined)
    for flag, env in [
        ("--orchestrator-url", "CLOUDBENCH_ORCHESTRATOR_URL"),
        ("--provider", "CLOUDBENCH_PROVIDER"),
        ("--instance-type", "CLOUDBENCH_INSTANCE_TYPE"),
        ("--alias", "CLOUDBENCH_ALIAS"),
        ("--run-id", "CLOUDBENCH_RUN_ID"),
    ]:
        assert f'{flag} "${env}"' in joined
    for line in (
        "CLOUDBENCH_PROVIDER='aws'",
        "CLOUDBENCH_INSTANCE_TYPE='c7g.large'",
        "CLOUDBENCH_ALIAS='graviton3'",
        "CLOUDBENCH_RUN_ID='r42'",
    ):
        assert f"export {line}" in script


def test_runner_user_data_carries_no_token() -> None:
    module = INFRA / "providers" / "aws"
    args = _templatefile_args(module / "main.tf", "runner-user-data.sh.tftpl")
    assert "runner_token" not in args.replace("aws_ssm_parameter.runner_token.name", "")
    text = (module / "templates" / "runner-user-data.sh.tftpl").read_text(encoding="utf-8")
    script = render_template(text, {**RUNNER_VARS, "runner_token": SAMPLE_TOKEN})
    assert SAMPLE_TOKEN not in script
    assert "get_parameter" in script and "WithDecryption=True" in script


def test_orchestrator_user_data_renders_and_reads_secrets_from_ssm() -> None:
    module = INFRA / "meta"
    template = "orchestrator-user-data.sh.tftpl"
    args = _templatefile_args(module / "compute.tf", template)
    assert "random_password" not in args
    keys = _templatefile_keys(module / "compute.tf", template)
    values = {k: f"value-of-{k}" for k in keys} | {"domain_name": ""}
    text = (module / "templates" / template).read_text(encoding="utf-8")
    script = render_template(text, values)
    _bash_syntax_ok(script)
    # The master's wheel from the bucket, in a virtualenv, under systemd.
    assert "value-of-wheel_key" in script and 'venv/bin/pip" install' in script
    assert "value-of-wheelhouse" in script and "--no-index --require-hashes" in script
    assert "systemctl enable --now cloudbench-orchestrator" in script
    for name in ("admin-token", "runner-token", "postgres-password", "tls-key"):
        assert f"value-of-ssm_prefix/{name}" in script
    # HTTPS only: the certificate from user-data, its key from SSM, both given to serve.
    assert "value-of-tls_cert" in script
    assert "--tls-cert $TLS/cert.pem --tls-key $TLS/key.pem" in script


def test_terraform_fmt_is_clean() -> None:
    # `fmt` needs no providers or network, so a real binary is fine here when present.
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip(
            "TERRAFORM FMT NOT CHECKED: no terraform binary on PATH (optional; "
            "parse + checkov still run)"
        )
    proc = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-list=true", str(INFRA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"not formatted: {proc.stdout}"
