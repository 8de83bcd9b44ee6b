"""Load generators for the queue benchmarks: wrk (HTTP, Lua scripts) and pgbench (SQL).

Both run as child processes; their own CPU time comes from wait4's rusage, so the
benchmark can show the load generator was not the bottleneck.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx, socket errors, or (claims) "done" answers: the queue ran dry
    cpu_s: float  # the load generator's own CPU time

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_share(self) -> float:
        """The load generator's CPU as a fraction of one core."""
        return self.cpu_s / self.seconds


def _child_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def timed_run(argv: list[str]) -> tuple[str, float]:
    """Run argv to the end; returns (stdout, its CPU seconds) from the reaped child's rusage."""
    before = _child_cpu()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout, _child_cpu() - before


WRK_COMMON = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer __TOKEN__"
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
bad = 0
function response(status, headers, body)
  if status ~= 200 or (check_done and string.find(body, '"done"', 1, true)) then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "us": %d, "p50": %d, "p99": %d, "bad": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    b + e.connect + e.read + e.write + e.timeout + e.status))
end
"""

WRK_CLAIM = r"""
check_done = true
local types = {__TYPES__}
local n = 0
function request()
  n = n + 1
  local body = string.format(
    '{"provider":"aws","instance_type":"%s","runner_id":"w%d-%d"}',
    types[(n % #types) + 1], tid, n)
  return wrk.format(nil, "/tasks/claim", nil, body)
end
"""

WRK_HEARTBEAT = r"""
check_done = false
local tasks = {__TASKS__}
local n = 0
function request()
  -- Each thread walks its own stride of the claimed tasks, like many runner slots.
  n = n + 1
  local t = tasks[((n * 2 + tid) % #tasks) + 1]
  local body = string.format(
    '{"runner_id":"%s","lease":%d,"status":"running","current_benchmark":"railsbench",'
    .. '"progress_pct":%d}', t[2], t[3], n % 100)
  return wrk.format(nil, "/tasks/" .. t[1] .. "/heartbeat", nil, body)
end
"""


def wrk(url: str, token: str, script: str, clients: int, seconds: float) -> Result:
    if shutil.which("wrk") is None:
        raise SystemExit("error: wrk not found; install it with `apt-get install -y wrk`")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_COMMON.replace("__TOKEN__", token) + script)
    threads = min(2, clients)
    argv = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds:g}s"]
    # A request slower than 2 s counts as an error (wrk forgets requests still in flight
    # at the end, so a long timeout would hide a wedged server).
    out, cpu = timed_run([*argv, "--timeout", "2s", "-s", f.name, url])
    Path(f.name).unlink()
    match = re.search(r"^RESULT (.*)$", out, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(match.group(1))
    wall = r["us"] / 1e6
    return Result(r["requests"], wall, r["p50"] / 1000, r["p99"] / 1000, r["bad"], cpu)


def claim_script(types: list[str]) -> str:
    return WRK_CLAIM.replace("__TYPES__", ", ".join(f'"{t}"' for t in types))


def heartbeat_script(tasks: list[tuple[int, str, int]]) -> str:
    rows = ", ".join(f'{{{i}, "{r}", {lease}}}' for i, r, lease in tasks)
    return WRK_HEARTBEAT.replace("__TASKS__", rows)


def pgbench(dsn_args: list[str], sql: str, clients: int, seconds: float) -> Result:
    """Run sql (a pgbench script) with per-transaction logs; latency from the logs."""
    work = Path(tempfile.mkdtemp(prefix="cb-pgbench-"))
    script = work / "script.sql"
    script.write_text(sql)
    argv = [PGBENCH, "-n", "-M", "prepared", "-f", str(script), "-c", str(clients)]
    argv += ["-j", str(min(2, clients)), "-T", f"{seconds:g}", "--log"]
    argv += ["--log-prefix", str(work / "tx"), *dsn_args]
    out, cpu = timed_run(argv)
    lat: list[int] = []
    for log in work.glob("tx*"):
        for line in log.read_text().splitlines():
            parts = line.split()
            lat.append(int(parts[2]))
    shutil.rmtree(work, ignore_errors=True)
    match = re.search(r"number of failed transactions: (\d+)", out)
    failed = int(match.group(1)) if match else 0
    lat.sort()
    if not lat:
        raise RuntimeError(f"pgbench ran no transactions:\n{out}")
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return Result(len(lat), seconds, p50 / 1000, p99 / 1000, failed, cpu)
