"""`cloudbench run` / `cloudbench status`: start, watch, stop, download, tear down.

One Master object owns everything a command started; `teardown` runs in a finally and
stops runners (providers), the embedded orchestrator and our containers, in that order.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console
from rich.prompt import Confirm

from cloudbench.master import containers
from cloudbench.master.client import ApiError, OrchestratorClient
from cloudbench.master.costplan import record_durations
from cloudbench.master.embedded import EmbeddedOrchestrator, OrchestratorFailed
from cloudbench.master.processes import stop_recorded
from cloudbench.master.progress import ProgressView
from cloudbench.master.providers import Provider, ProviderContext, ProviderError
from cloudbench.master.providers.base import RunnerOptions, StopRun
from cloudbench.master.results import (
    EXIT_ERROR,
    Outcome,
    ResultsError,
    fetch_results,
    print_summary,
)
from cloudbench.master.stacks import MetaDeployment
from cloudbench.master.state import Session
from cloudbench.protocol import ArchiveState, RunOut, RunSpec, RunStatus

logger = logging.getLogger(__name__)

POLL = 1.0
EXIT_INTERRUPTED = 130
FAILURES = (ApiError, OrchestratorFailed, ProviderError, ResultsError, httpx.HTTPError, OSError)


class Terminated(KeyboardInterrupt):
    """SIGTERM: like Ctrl-C answered with yes (nobody is there to answer a prompt)."""


class Stalled(RuntimeError):
    """No runner is left but the run still has work: it can never finish by itself."""


@dataclass
class MasterOptions:
    results_dir: Path = Path("results")
    yes: bool = False
    json_out: bool = False
    heartbeat_timeout: float = 120.0
    runner: RunnerOptions = field(default_factory=RunnerOptions)
    meta: MetaDeployment | None = None  # AWS: the orchestrator comes from Terraform


class Master:
    def __init__(self, console: Console, err: Console, opts: MasterOptions) -> None:
        self.console, self.err, self.opts = console, err, opts
        self.providers: list[Provider] = []
        self._spec: RunSpec | None = None
        self._state_dir: Path | None = None
        self.embedded: EmbeddedOrchestrator | None = None
        self.client: OrchestratorClient | None = None
        self.session: Session | None = None
        self.adopted: Session | None = None  # a dead master's session `status` cleans up
        self.run_id: int | None = None
        self.hurry = False
        self._idle_since: float | None = None

    # ------------------------------------------------------------ entry points
    def run(
        self, spec: RunSpec, providers: list[Provider], state_dir: Path, url: str | None
    ) -> int:
        self.providers = providers
        self._spec, self._state_dir = spec, state_dir

        def start_and_follow() -> int:
            self.session = Session.new(state_dir)
            runner_token = self._connect(state_dir, url)
            created = self._api().create_run(_body(spec))
            self.run_id = created.run_id
            self.session.run_id = created.run_id
            self.session.save()
            self.console.print(
                f"run {created.run_id}: {created.tasks_created} task(s); state in {state_dir}",
                soft_wrap=True, highlight=False,
            )  # fmt: skip
            self._start_providers(spec, runner_token, state_dir)
            return self._follow(created.run_id)

        return self._guarded(start_and_follow)

    def status(self, run_id: int, url: str, admin_token: str, adopted: Session | None) -> int:
        self.run_id, self.adopted = run_id, adopted
        self.client = OrchestratorClient(url, admin_token)
        return self._guarded(lambda: self._follow(run_id))

    def _guarded(self, body: Callable[[], int]) -> int:
        """Ctrl-C and known failures become exit codes; teardown always happens."""
        try:
            return body()
        except KeyboardInterrupt:
            return self._interrupted()
        except FAILURES as exc:
            return self._fail(exc)
        finally:
            self.teardown()

    # ------------------------------------------------------------ start
    def _connect(self, state_dir: Path, url: str | None) -> str:
        assert self.session is not None
        if url:
            admin, runner = _env_token("ADMIN"), os.environ.get("CLOUDBENCH_RUNNER_TOKEN", "")
            self.session.orchestrator_url = url
            self.session.save()
            self.client = OrchestratorClient(url, admin)
            return runner
        if self.opts.meta is not None:
            out = self.opts.meta.connect()
            self.session.orchestrator_url = out.url
            self.session.save()
            self.client = OrchestratorClient(out.url, out.admin_token)
            return out.runner_token
        self.embedded = EmbeddedOrchestrator(state_dir, self.session, self.opts.heartbeat_timeout)
        self.embedded.start()
        self.client = OrchestratorClient(self.embedded.url, self.embedded.admin_token)
        return self.embedded.runner_token

    def _start_providers(self, spec: RunSpec, token: str, state_dir: Path) -> None:
        assert self.session is not None and self.run_id is not None and self.client is not None
        ctx = ProviderContext(
            run_id=self.run_id, spec=spec, orchestrator_url=self.client.url,
            runner_token=token, state_dir=state_dir, session=self.session,
            options=self.opts.runner,
        )  # fmt: skip
        if not token and any(p.name == "local" for p in self.providers):
            raise ProviderError(
                "local runners need CLOUDBENCH_RUNNER_TOKEN with --orchestrator-url"
            )
        for provider in self.providers:
            provider.start(ctx)

    def _api(self) -> OrchestratorClient:
        assert self.client is not None
        return self.client

    # ------------------------------------------------------------ watch
    def _follow(self, run_id: int) -> int:
        run = self._watch_interruptible(run_id)
        outcome = fetch_results(self._api(), run, self.opts.results_dir)
        self._remember_durations(run_id)
        self._report(outcome)
        return outcome.exit_code

    def _remember_durations(self, run_id: int) -> None:
        """Task durations for the next --dry-run's estimate; never fails the run."""
        if self._spec is None or self._state_dir is None:
            return
        try:
            tasks = self._api().tasks(run_id).tasks
            record_durations(self._state_dir, self._spec, tasks)
        except Exception as exc:  # an estimate aid, not a result
            logger.warning("cannot record task durations: %s", exc)

    def _watch_interruptible(self, run_id: int) -> RunOut:
        while True:
            try:
                return self._watch(run_id)
            except KeyboardInterrupt as exc:
                if not isinstance(exc, Terminated) and not self._confirm_teardown():
                    continue
            except (Stalled, StopRun) as exc:
                self.err.print(f"error: {exc}", markup=False, soft_wrap=True)
            self.console.print(f"stopping run {run_id} and collecting what exists …")
            self._api().stop_run(run_id)
            # A second Ctrl-C from here on propagates: teardown without further questions.
            return self._watch(run_id)

    def _watch(self, run_id: int) -> RunOut:
        with ProgressView(self.console) as view:
            while True:
                if self.embedded is not None:
                    self.embedded.ensure_alive()
                notes = [note for p in self.providers for note in p.poll()]
                try:
                    run = self._api().get_run(run_id)
                except httpx.TransportError as exc:
                    view.update_note(f"orchestrator unreachable ({exc}); retrying")
                    time.sleep(POLL)
                    continue
                view.update(run, notes)
                if run.status != RunStatus.running and run.archive_state in (
                    ArchiveState.ready, ArchiveState.failed,
                ):  # fmt: skip
                    return run
                self._check_stalled(run)
                time.sleep(POLL)

    def _check_stalled(self, run: RunOut) -> None:
        if not self.providers or run.status != RunStatus.running:
            return
        if any(p.active() for p in self.providers):
            self._idle_since = None
            return
        now = time.monotonic()
        self._idle_since = self._idle_since or now
        # Claimed tasks of dead runners time out first; pending ones would wait forever.
        if now - self._idle_since > self.opts.heartbeat_timeout + 10:
            raise Stalled("every runner has exited but the run still has tasks; see runner logs")

    def _confirm_teardown(self) -> bool:
        if self.opts.yes or not self.console.is_terminal:
            return True
        return Confirm.ask(
            "Stop the run now, download what exists and tear everything down?",
            console=self.console, default=True,
        )  # fmt: skip

    # ------------------------------------------------------------ finish
    def _report(self, outcome: Outcome) -> None:
        print_summary(self.console, outcome)
        if self.opts.json_out:
            self.console.print(outcome.as_json(), markup=False, highlight=False, soft_wrap=True)

    def _fail(self, exc: BaseException) -> int:
        self.err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        self._json_error(str(exc), EXIT_ERROR)
        return EXIT_ERROR

    def _interrupted(self) -> int:
        self.hurry = True
        self.err.print("interrupted: tearing down without waiting", soft_wrap=True)
        self._json_error("interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED

    def _json_error(self, message: str, code: int) -> None:
        if self.opts.json_out:
            outcome = Outcome(self.run_id or 0, "error", code, None, {}, error=message)
            self.console.print(outcome.as_json(), markup=False, highlight=False, soft_wrap=True)

    def teardown(self) -> None:
        """Stop all we started; a Ctrl-C or SIGTERM in here only makes it hurry."""
        previous = signal.signal(signal.SIGINT, self._hurry_up)
        # SIGTERM raises KeyboardInterrupt (cli._signals_interrupt): one landing here
        # would abort teardown and leave the orchestrator and containers running.
        previous_term = signal.signal(signal.SIGTERM, self._hurry_up)
        try:
            for provider in self.providers:
                _safely(provider.stop, self.hurry)
            if self.embedded is not None:
                _safely(self.embedded.stop, 1.0 if self.hurry else 10.0)
            if self.adopted is not None:
                _safely(self._stop_adopted)
            if self.client is not None:
                self.client.close()
            if self.session is not None:
                self.session.remove()  # everything it listed is stopped
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, previous_term)

    def _stop_adopted(self) -> None:
        assert self.adopted is not None
        left = stop_recorded(self.adopted.processes, 1.0 if self.hurry else 15.0)
        if self.run_id is not None:
            containers.remove_ours(self.run_id)
        if not left:
            self.adopted.remove()

    def _hurry_up(self, _signum: int, _frame: FrameType | None) -> None:
        self.hurry = True


def _safely(func: Callable[..., object], *args: object) -> None:
    try:
        func(*args)
    except Exception:
        logger.exception("teardown step failed")


def _env_token(kind: str) -> str:
    name = f"CLOUDBENCH_{kind}_TOKEN"
    value = os.environ.get(name, "")
    if not value:
        raise ProviderError(f"--orchestrator-url needs {name} in the environment")
    return value


def _body(spec: RunSpec) -> dict[str, object]:
    from cloudbench.master.config import run_body

    return run_body(spec)
