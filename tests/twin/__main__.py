"""scripts/cloud-twin: run a command against the AWS twin, or keep a twin up.

    cloud-twin [OPTIONS] -- COMMAND...   twin up, COMMAND with its environment, twin down
    cloud-twin up [OPTIONS]              start one in the background; prints its env file
    cloud-twin down [--state-dir DIR]    stop the one `up` started

Options: --state-dir DIR (logs and state; default a new folder under /tmp),
--fail-boot ALIAS[:STAGE] (STAGE apt (default) or pip), --kill-vm ALIAS:SECONDS,
--no-boot ALIAS, --interrupt ALIAS:SECONDS (SECONDS after a benchmark process first ran
in it, one VM of the type gets the spot interruption notice in its IMDS and is terminated
INTERRUPT_GRACE s later; see vms.py), --vm-engine (VMs use this machine's container
engine; see vms.py), --vm-env NAME=VALUE (set in every VM's environment, e.g. the fake
suite's FAKE_BENCH_SLEEP with CLOUDBENCH_PASS_ENV=FAKE_BENCH_SLEEP).
The exit status is COMMAND's.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.twin.core import Faults, Twin, TwinError

UP_DIR = Path(tempfile.gettempdir()) / "cloudbench-twin-up"
STAGES = ("apt", "pip")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloud-twin", description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--fail-boot", action="append", default=[], metavar="ALIAS[:STAGE]")
    parser.add_argument("--kill-vm", action="append", default=[], metavar="ALIAS:SECONDS")
    parser.add_argument("--no-boot", action="append", default=[], metavar="ALIAS")
    parser.add_argument("--interrupt", action="append", default=[], metavar="ALIAS:SECONDS")
    parser.add_argument("--vm-engine", action="store_true")
    parser.add_argument("--vm-env", action="append", default=[], metavar="NAME=VALUE")
    return parser


def _faults(args: argparse.Namespace) -> Faults:
    faults = Faults(no_boot=set(args.no_boot), vm_engine=args.vm_engine)
    for item in args.fail_boot:
        alias, _, stage = item.partition(":")
        stage = stage or "apt"
        if stage not in STAGES:
            raise SystemExit(
                f"cloud-twin: --fail-boot {item}: STAGE must be one of {', '.join(STAGES)}"
            )
        faults.fail_boot[alias] = stage
    for item in args.vm_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"cloud-twin: --vm-env {item}: expected NAME=VALUE")
        faults.vm_env[name] = value
    for item in args.kill_vm:
        alias, _, seconds = item.partition(":")
        try:
            faults.kill_vm[alias] = float(seconds)
        except ValueError:
            raise SystemExit(f"cloud-twin: --kill-vm {item}: expected ALIAS:SECONDS") from None
    for item in args.interrupt:
        alias, _, seconds = item.partition(":")
        try:
            faults.interrupt[alias] = float(seconds)
        except ValueError:
            raise SystemExit(f"cloud-twin: --interrupt {item}: expected ALIAS:SECONDS") from None
    return faults


def _logging(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(state_dir / "twin.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(args: argparse.Namespace, command: list[str]) -> int:
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="cloudbench-twin-"))
    _logging(state_dir)
    twin = Twin(state_dir, _faults(args))
    print(f"cloud-twin: logs in {twin.state_dir}", file=sys.stderr)
    # SIGTERM (a test's timeout, a CI cancel) stops COMMAND as Ctrl-C would: its whole
    # process group gets SIGINT, so a master still tears its stacks down in the twin.
    signal.signal(signal.SIGTERM, lambda *_: _interrupt())
    try:
        twin.start()
        env = {**os.environ, **twin.env()}
        proc = subprocess.Popen(command, env=env, start_new_session=True)
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                os.killpg(proc.pid, signal.SIGINT)
    except TwinError as exc:
        print(f"cloud-twin: {exc}", file=sys.stderr)
        return 2
    finally:
        twin.stop()
        print(f"cloud-twin: down; logs in {twin.state_dir}", file=sys.stderr)


def _interrupt() -> None:
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace) -> int:
    """`up`'s background process: the twin until SIGTERM."""
    _logging(args.state_dir)
    twin = Twin(args.state_dir, _faults(args))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        twin.start()
        (twin.state_dir / "pid").write_text(str(os.getpid()))
        done.wait()
    finally:
        twin.stop()
    return 0


def _up(args: argparse.Namespace, extra: list[str]) -> int:
    state_dir = (args.state_dir or UP_DIR).resolve()
    if (state_dir / "pid").is_file():
        print(
            f"cloud-twin: one is up already ({state_dir}); `cloud-twin down` first", file=sys.stderr
        )
        return 1
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "env.sh").unlink(missing_ok=True)
    with (state_dir / "serve.log").open("ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "tests.twin", "serve", "--state-dir", str(state_dir), *extra],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while not (state_dir / "pid").is_file():
        if time.monotonic() > deadline:
            print(f"cloud-twin: did not come up; see {state_dir}/serve.log", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"cloud-twin: up; logs in {state_dir}; for its environment: . {state_dir}/env.sh")
    return 0


def _down(args: argparse.Namespace) -> int:
    state_dir = (args.state_dir or UP_DIR).resolve()
    pid_file = state_dir / "pid"
    if not pid_file.is_file():
        print(f"cloud-twin: none up in {state_dir}", file=sys.stderr)
        return 1
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGTERM)
    for _ in range(120):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    pid_file.unlink(missing_ok=True)
    print(f"cloud-twin: down; logs in {state_dir}")
    return 0


def main(argv: list[str]) -> int:
    if "--" in argv:
        at = argv.index("--")
        args = _parser().parse_args(argv[:at])
        if not argv[at + 1 :]:
            raise SystemExit("cloud-twin: no COMMAND after --")
        return _run(args, argv[at + 1 :])
    if argv and argv[0] in ("up", "down", "serve"):
        args = _parser().parse_args(argv[1:])
        if argv[0] == "up":
            return _up(args, argv[1:])
        if argv[0] == "down":
            return _down(args)
        return _serve(args)
    _parser().print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
