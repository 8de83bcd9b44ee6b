"""Where ruby-bench comes from: a git URL at a pinned commit, or a local directory."""

from __future__ import annotations

import hashlib
import logging
import socket
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from cloudbench.runner.executors.base import ProvisionError, StartupError

log = logging.getLogger(__name__)
_lock = threading.Lock()
CONNECT_TIMEOUT = 5.0
_FIX = "offline? pass --ruby-bench PATH (a ruby-bench checkout on this machine)"


@dataclass(frozen=True)
class RubyBenchSource:
    path: Path  # a checkout on this machine
    origin: str  # URL or directory given by the user
    commit: str | None  # the git commit when known
    content_id: str  # stable id of the content, for image tags

    @property
    def short_id(self) -> str:
        return self.content_id[:12]


def _git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise ProvisionError(f"git {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return result.stdout.strip()


def _tree_hash(path: Path) -> str:
    """Content id of a directory without git: names and bytes of every file."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _local_source(path: Path) -> RubyBenchSource:
    if not (path / "run_benchmarks.rb").is_file():
        raise StartupError(
            f"--ruby-bench {path} does not look like ruby-bench (no run_benchmarks.rb) — "
            "pass the directory of a ruby-bench checkout"
        )
    commit = None
    if (path / ".git").exists():
        try:
            commit = _git("rev-parse", "HEAD", cwd=path)
        except ProvisionError:
            commit = None
    # A working tree may differ from its commit, so the content decides the image tag.
    return RubyBenchSource(path.resolve(), str(path), commit, _tree_hash(path))


def check_reachable(url: str) -> None:
    """Fail in seconds, not after git's own minutes-long retries, when the host is away."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "git") or not parts.hostname:
        return  # ssh/scp-style and file URLs: git's own error will do
    port = parts.port or {"http": 80, "https": 443, "git": 9418}[parts.scheme]
    try:
        addresses = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise StartupError(
            f"cannot fetch ruby-bench from {url}: could not resolve host {parts.hostname} — {_FIX}"
        ) from None
    family, kind, proto, _name, address = addresses[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(address)
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise StartupError(
            f"cannot fetch ruby-bench from {url}: cannot connect to {parts.hostname}:{port} "
            f"({reason}) — {_FIX}"
        ) from None


def _clone(url: str, ref: str, cache_dir: Path) -> RubyBenchSource:
    dest = cache_dir / f"ruby-bench-{hashlib.sha256(f'{url}@{ref}'.encode()).hexdigest()[:16]}"
    if not (dest / "run_benchmarks.rb").is_file():
        tmp = dest.with_name(dest.name + ".tmp")
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
        tmp.mkdir(parents=True)
        check_reachable(url)
        log.info("fetching ruby-bench %s at %s", url, ref)
        _git("init", "-q", cwd=tmp)
        try:  # one commit, shallow: GitHub serves full commit ids and branch names
            _git("fetch", "-q", "--depth", "1", url, ref, cwd=tmp)
            target = "FETCH_HEAD"
        except ProvisionError:  # an abbreviated id: fetch everything, let git resolve it
            try:
                _git("fetch", "-q", url, "+refs/heads/*:refs/remotes/origin/*", cwd=tmp)
            except ProvisionError as exc:
                raise StartupError(f"cannot fetch ruby-bench from {url}: {exc} — {_FIX}") from None
            target = ref
        try:
            _git("checkout", "-q", target, cwd=tmp)
        except ProvisionError as exc:
            raise StartupError(
                f"ruby-bench {url} has no commit {ref}: {exc} — pass --ruby-bench URL@REF"
            ) from None
        tmp.rename(dest)
    commit = _git("rev-parse", "HEAD", cwd=dest)
    return RubyBenchSource(dest, url, commit, commit)


def prepare_source(spec: str, default_commit: str, cache_dir: Path) -> RubyBenchSource:
    """Resolve --ruby-bench once per machine: a local dir, or URL[@ref] cloned into the cache."""
    with _lock:
        local = Path(spec).expanduser()
        if local.is_dir():
            return _local_source(local)
        url, _, ref = spec.rpartition("@") if "@" in spec.split("/")[-1] else (spec, "", "")
        cache_dir.mkdir(parents=True, exist_ok=True)
        return _clone(url or spec, ref or default_commit, cache_dir)


@lru_cache(maxsize=8)
def suite_categories(path: Path) -> dict[str, str]:
    """benchmark → category (headline, other, micro) from the suite's benchmarks.yml;
    {} when it has none or it cannot be read (then a report uses every benchmark)."""
    try:
        data = yaml.safe_load((path / "benchmarks.yml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        log.info("no benchmark categories from %s/benchmarks.yml: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(name): str(entry["category"])
        for name, entry in data.items()
        if isinstance(entry, dict) and isinstance(entry.get("category"), str)
    }
