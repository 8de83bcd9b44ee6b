"""Private container engines for tests that change an engine's CPU affinity.

The shared podman service (tests/containers.py) serves every test on the machine; pinning
it would confine other tests' containers to one CPU. These start an engine of their own
on a private socket — rootful podman, rootless podman (a non-root user with subuids) or
Debian's dockerd — and stop exactly that process afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.containers import ensure_engine

RUBY_IMAGE = "docker.io/library/ruby:3.1"
ROOTLESS_USER = "cloudbench-rootless"


def _answers(sock: Path, user: str | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["curl", "-sf", "--max-time", "2", "--unix-socket", str(sock), "http://d/_ping"],
            capture_output=True,
        )
        if done.returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"engine on {sock} did not answer within {timeout}s")


@contextmanager
def _serving(command: list[str], sock: Path, log: Path, **popen: object) -> Iterator[str]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **popen,
        )  # type: ignore[call-overload]
    try:
        _answers(sock)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ruby_archive(tmp: Path) -> Path:
    """The shared engine's ruby image as a docker-archive another engine can load."""
    os.environ["DOCKER_HOST"] = ensure_engine()
    archive = tmp / "ruby.tar"
    subprocess.run(
        ["podman", "save", "--format", "docker-archive", "-o", str(archive), RUBY_IMAGE],
        check=True,
        capture_output=True,
    )
    archive.chmod(0o644)
    return archive


def _overlay_storage(as_user: dict[str, object]) -> None:
    """Rootless podman 4.3 falls back to vfs storage, which copies the whole image for
    every container and layer (~30 s of this test). The kernel's own overlay works for an
    unprivileged user here: use it, once, if it does (vfs storage is then reset)."""
    home = Path(str(as_user["cwd"]))
    conf = home / ".config" / "containers" / "storage.conf"
    if conf.exists():
        return
    probe = home / ".cache" / "overlay-probe"
    info = [
        "podman",
        "--storage-driver",
        "overlay",
        "--root",
        str(probe / "root"),
        "--runroot",
        str(probe / "run"),
        "info",
        "--format",
        "{{.Store.GraphDriverName}}",
    ]
    done = subprocess.run(info, capture_output=True, text=True, **as_user)  # type: ignore[call-overload]
    shutil.rmtree(probe, ignore_errors=True)
    if done.returncode != 0 or done.stdout.strip() != "overlay":
        return  # vfs it stays: slower, same behaviour
    subprocess.run(["podman", "system", "reset", "--force"], capture_output=True, **as_user)  # type: ignore[call-overload]
    write = f"mkdir -p {conf.parent} && printf '[storage]\\ndriver = \"overlay\"\\n' > {conf}"
    subprocess.run(["sh", "-c", write], check=True, **as_user)  # type: ignore[call-overload]


@contextmanager
def rootful_podman(tmp: Path) -> Iterator[str]:
    ensure_engine()  # the image and containers.conf
    sock = tmp / "podman.sock"
    command = ["podman", "system", "service", "--time=0", f"unix://{sock}"]
    with _serving(command, sock, tmp / "podman.log") as host:
        yield host


@contextmanager
def dockerd(tmp: Path) -> Iterator[str]:
    if shutil.which("dockerd") is None:
        pytest.skip("DOCKER TEST SKIPPED: no dockerd (Debian: apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("DOCKER TEST SKIPPED: starting a private dockerd needs root")
    archive = ruby_archive(tmp)
    sock = tmp / "docker.sock"
    command = [
        "dockerd",
        "--host",
        f"unix://{sock}",
        "--data-root",
        str(tmp / "root"),
        "--exec-root",
        str(tmp / "exec"),
        "--pidfile",
        str(tmp / "docker.pid"),
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
    ]
    with _serving(command, sock, tmp / "dockerd.log") as host:
        env = {**os.environ, "DOCKER_HOST": host}
        subprocess.run(
            ["docker", "load", "-i", str(archive)], check=True, env=env, capture_output=True
        )
        subprocess.run(["docker", "tag", RUBY_IMAGE, "ruby:3.1"], env=env, capture_output=True)
        yield host


def _rootless_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(ROOTLESS_USER)
    except KeyError:
        if os.geteuid() != 0:
            pytest.skip(f"ROOTLESS TEST SKIPPED: no user {ROOTLESS_USER} and not root to add it")
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", ROOTLESS_USER], check=True)
    if ROOTLESS_USER not in Path("/etc/subuid").read_text():
        subprocess.run(
            [
                "usermod",
                "--add-subuids",
                "400000-465535",
                "--add-subgids",
                "400000-465535",
                ROOTLESS_USER,
            ],
            check=True,
        )
    return pwd.getpwnam(ROOTLESS_USER)


@contextmanager
def rootless_podman(tmp: Path) -> Iterator[tuple[str, pwd.struct_passwd]]:
    """`podman system service` run by a non-root user; the test talks to its socket."""
    if os.geteuid() != 0:
        pytest.skip("ROOTLESS TEST SKIPPED: setting up the rootless user needs root")
    user = _rootless_user()
    run_dir = tmp / "xdg"
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, user.pw_uid, user.pw_gid)
    env = {
        "HOME": user.pw_dir,
        "XDG_RUNTIME_DIR": str(run_dir),
        "PATH": os.environ["PATH"],
        "USER": ROOTLESS_USER,
        "LANG": "C.UTF-8",
    }
    as_user = {
        "user": user.pw_uid,
        "group": user.pw_gid,
        "extra_groups": [],
        "env": env,
        "cwd": user.pw_dir,
    }
    _overlay_storage(as_user)
    exists = subprocess.run(["podman", "image", "exists", RUBY_IMAGE], **as_user)  # type: ignore[call-overload]
    if exists.returncode != 0:
        archive = ruby_archive(tmp)
        subprocess.run(
            ["podman", "load", "-i", str(archive)], check=True, capture_output=True, **as_user
        )  # type: ignore[call-overload]
    sock = run_dir / "podman.sock"
    command = ["podman", "system", "service", "--time=0", f"unix://{sock}"]
    with _serving(command, sock, tmp / "rootless.log", **as_user) as host:
        yield host, user
