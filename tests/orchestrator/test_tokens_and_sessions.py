"""Tokens strong and distinct, logins throttled, logout revoking (issue 25 item 5).

Black-box: `serve` as a process for the start-up rule; a real orchestrator over HTTP on
Postgres and SQLite for the dashboard's login and logout.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cloudbench.orchestrator.settings import token_bits
from tests.dashboard.helpers import csrf_of, login
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import free_port

STRONG = secrets.token_urlsafe(24)
WEAK_CASES = {
    "one_char": ("a", secrets.token_urlsafe(24), "CLOUDBENCH_ADMIN_TOKEN is too weak"),
    "equal": (STRONG, STRONG, "must differ"),
    "short_hex": (secrets.token_hex(8), secrets.token_urlsafe(24), "too weak (~64 bits)"),
    "repetitive": ("ab" * 40, secrets.token_urlsafe(24), "too weak"),
    "weak_runner": (secrets.token_urlsafe(24), "runner-token", "CLOUDBENCH_RUNNER_TOKEN"),
}


@pytest.mark.parametrize("case", sorted(WEAK_CASES))
def test_weak_or_equal_tokens_are_refused_at_start(tmp_path: Path, case: str) -> None:
    admin, runner, needle = WEAK_CASES[case]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBENCH_")}
    env.update(
        CLOUDBENCH_STATE_DIR=str(tmp_path),
        CLOUDBENCH_ADMIN_TOKEN=admin,
        CLOUDBENCH_RUNNER_TOKEN=runner,
    )
    out = subprocess.run(
        [sys.executable, "-m", "cloudbench", "orchestrator", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr, out.stderr
    if case != "equal":
        assert "at least 128 bits" in out.stderr
    for token in (admin, runner):  # never echoed
        assert len(token) < 8 or token not in out.stderr


def test_generated_tokens_pass_the_rule() -> None:
    assert token_bits(secrets.token_urlsafe(16)) >= 128  # 22 base64url characters
    assert token_bits(secrets.token_hex(16)) >= 128  # 32 hex digits
    assert token_bits("a" * 100) < 128 or len(set("a" * 100)) < 8


def test_logins_are_throttled_per_client(orchestrator: OrchestratorProcess) -> None:
    anon = httpx.Client(base_url=orchestrator.url, timeout=30)
    codes = [anon.post("/login", data={"token": f"guess-{i}"}).status_code for i in range(10)]
    assert codes == [401] * 10
    throttled = anon.post("/login", data={"token": "guess-11"})
    assert throttled.status_code == 429
    wait = int(throttled.headers["retry-after"])
    assert 1 <= wait <= 300
    assert "Too many failed logins" in throttled.text
    # Even the right token waits: the throttle is checked before the token.
    assert anon.post("/login", data={"token": orchestrator.admin_token}).status_code == 429


def test_logout_revokes_the_session_server_side(orchestrator: OrchestratorProcess) -> None:
    client = login(orchestrator)
    page = client.get("/")
    assert page.status_code == 200
    stolen = client.cookies["cloudbench_session"]
    out = client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303
    # A copy of the cookie taken before logout no longer works, on any endpoint.
    copy = httpx.Client(base_url=orchestrator.url, timeout=30)
    copy.cookies.set("cloudbench_session", stolen)
    assert copy.get("/").status_code == 303
    assert copy.get("/dashboard/fragment").status_code == 401
    # A new login still works.
    assert login(orchestrator).get("/").status_code == 200
