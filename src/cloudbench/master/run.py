"""`cloudbench run` / `cloudbench status`: start, watch, stop, download, tear down.

One Master object owns everything a command started; `teardown` runs in a finally and
stops runners (providers), the embedded orchestrator and our containers, in that order.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, cast

import httpx
from rich.console import Console
from rich.prompt import Confirm

from cloudbench.master.boottimes import record_boot_times
from cloudbench.master.client import ApiError, OrchestratorClient
from cloudbench.master.config import MasterOptions, RunPlan
from cloudbench.master.costplan import meter_for, record_durations
from cloudbench.master.embedded import EmbeddedOrchestrator, OrchestratorFailed
from cloudbench.master.metacost import meta_cost
from cloudbench.master.providers import Provider, ProviderContext, ProviderError, make_provider
from cloudbench.master.providers.base import StopRun
from cloudbench.master.results import (
    EXIT_ERROR,
    Outcome,
    ResultsError,
    fetch_results,
    print_summary,
    write_report,
)
from cloudbench.master.resume import (
    ResumeError,
    RunRecord,
    differences,
    remaining,
    retire_session,
    save_record,
)
from cloudbench.master.stacks import MetaDeployment, offer_nuke
from cloudbench.master.watch import RunnersExited, RunWatcher, Stalled
from cloudbench.platform import containers
from cloudbench.platform.processes import stop_recorded
from cloudbench.platform.state import Session, cloudbench_home
from cloudbench.protocol import RunOut, RunStatus

if TYPE_CHECKING:
    from cloudbench.master.providers.driver import StackDriver

logger = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130
FAILURES = (
    ApiError,
    OrchestratorFailed,
    ProviderError,
    ResultsError,
    ResumeError,
    httpx.HTTPError,
    OSError,
)


class Terminated(KeyboardInterrupt):
    """SIGTERM: like Ctrl-C answered with yes (nobody is there to answer a prompt)."""


class Master:
    def __init__(self, console: Console, err: Console, opts: MasterOptions) -> None:
        self.console, self.err, self.opts = console, err, opts
        self.providers: list[Provider] = []
        self.meta: MetaDeployment | None = None  # AWS: the orchestrator comes from Terraform
        self._plan: RunPlan | None = None
        self.embedded: EmbeddedOrchestrator | None = None
        self.client: OrchestratorClient | None = None
        self.session: Session | None = None
        self.adopted: Session | None = None  # a dead master's session `status` cleans up
        self.run_id: int | None = None
        self.hurry = False
        self._watcher: RunWatcher | None = None
        self._stopped_on_error = False

    # ------------------------------------------------------------ entry points
    def run(self, plan: RunPlan, resume: RunRecord | None = None) -> int:
        """Check every provider, then start (or resume), follow, collect and tear down."""
        self._plan = plan
        if plan.aws is not None:
            self.meta = MetaDeployment(plan.aws, plan.logs_dir, plan.reuse)
        try:
            resumed = resume.run_id if resume is not None else None
            self.providers = [self._provider(name, plan, resumed) for name in plan.providers]
        except ProviderError as exc:  # nothing has started yet
            self.err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            if self.meta is not None and self.meta.deployed():  # from an earlier run
                self._still_up(plan, self.meta)
            return EXIT_ERROR
        if resume is not None:
            code = self._guarded(lambda: self._resume_and_follow(plan, resume))
        else:
            code = self._guarded(lambda: self._start_and_follow(plan))
        if self.meta is not None and self.meta.failed:
            offer_nuke(
                self.err, plan.master.yes, self.run_id, self.meta.settings.region, plan.clouds
            )
        if self.meta is not None and (self.meta.outputs is not None or self.meta.deployed()):
            self._still_up(plan, self.meta)
        return code

    def _still_up(self, plan: RunPlan, meta: MetaDeployment) -> None:
        """The meta deployment outlives the run: say so, what it costs, how to remove it."""
        cost = plan.cost.meta if plan.cost is not None else None
        cost = cost or meta_cost(None, meta.settings.region)
        bucket = meta.outputs.bucket if meta.outputs is not None else ""
        self.err.print(
            cost.still_up(meta.settings.deployment, bucket),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    def _provider(self, name: str, plan: RunPlan, resumed: int | None) -> Provider:
        provider = make_provider(name, meta=self.meta, console=self.err, logs_dir=plan.logs_dir)
        provider.check(plan.spec, plan.runner, resumed=resumed)
        if name == "cloud" and plan.cost is not None:
            cloud = cast("StackDriver", provider)
            cloud.meter = meter_for(plan.spec, plan.cost)
            cloud.results_dir = plan.master.results_dir
        return provider

    def _start_and_follow(self, plan: RunPlan) -> int:
        self.session = Session.new(plan.state_dir)
        runner_token = self._connect(plan)
        created = self._api().create_run(plan.body)
        self.run_id = created.run_id
        self.session.run_id = created.run_id
        self.session.save()
        external = plan.external.url if plan.external is not None else None
        save_record(
            RunRecord(
                run_id=created.run_id,
                state_dir=str(plan.state_dir.resolve()),
                body=plan.body,
                orchestrator_url=external,
                meta=self.meta is not None,
            )
        )
        self.console.print(
            f"run {created.run_id}: {created.tasks_created} task(s); state in {plan.state_dir}",
            soft_wrap=True,
            highlight=False,
        )
        ctx = ProviderContext(
            run_id=created.run_id,
            spec=plan.spec,
            orchestrator_url=self._api().url,
            runner_token=runner_token,
            state_dir=plan.state_dir,
            session=self.session,
            options=plan.runner,
            orchestrator_cert=self._api().cert_pem,
            api=self._api(),
        )
        for provider in self.providers:
            provider.start(ctx)
        return self._follow(created.run_id)

    def _resume_and_follow(self, plan: RunPlan, record: RunRecord) -> int:
        """Re-attach to an unfinished run: its orchestrator, then runners where work is left."""
        changed = differences(record.body, plan.body)
        if changed:
            raise ResumeError(
                f"run {record.run_id} was started with another config; differences:\n  "
                + "\n  ".join(changed)
            )
        self.run_id = record.run_id
        retire_session(record.run_id)
        self.session = Session.new(plan.state_dir)
        self.session.run_id = record.run_id
        runner_token = self._connect(plan)  # embedded: a new one on the run's database
        run = self._api().get_run(record.run_id)
        left = remaining(run) if run.status == RunStatus.running else frozenset()
        self.console.print(
            f"resuming run {record.run_id}: {run.tasks.completed + run.tasks.failed}/"
            f"{run.tasks.total} done; runners for: {', '.join(sorted(left)) or 'none'}",
            soft_wrap=True,
            highlight=False,
        )
        if left:
            ctx = ProviderContext(
                run_id=record.run_id,
                spec=plan.spec,
                orchestrator_url=self._api().url,
                runner_token=runner_token,
                state_dir=plan.state_dir,
                session=self.session,
                options=plan.runner,
                only=left,
                resumed=True,
                orchestrator_cert=self._api().cert_pem,
                api=self._api(),
            )
            for provider in self.providers:
                provider.start(ctx)
        return self._follow(record.run_id)

    def status(
        self, run_id: int, url: str, admin_token: str, adopted: Session | None, cert: str | None
    ) -> int:
        self.run_id, self.adopted = run_id, adopted
        self.client = OrchestratorClient(url, admin_token, cert_pem=cert)
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
    def _connect(self, plan: RunPlan) -> str:
        """Reach the plan's orchestrator; returns the token its runners use."""
        assert self.session is not None
        cert: str | None = None  # the meta deployment's pinned certificate
        if plan.external is not None:
            url, admin, runner = (
                plan.external.url,
                plan.external.admin_token,
                plan.external.runner_token,
            )
        elif self.meta is not None:
            out = self.meta.connect()
            url, admin, runner = out.url, out.admin_token, out.runner_token
            cert = out.pin_for(url)
        else:
            self.embedded = EmbeddedOrchestrator(
                plan.state_dir, self.session, plan.master.heartbeat_timeout
            )
            self.embedded.start()  # records itself in the session
            url, admin, runner = (
                self.embedded.url,
                self.embedded.admin_token,
                self.embedded.runner_token,
            )
        if self.embedded is None:
            self.session.orchestrator_url = url
            self.session.orchestrator_cert = cert
            self.session.save()
        self.client = OrchestratorClient(url, admin, cert_pem=cert)
        return runner

    def _api(self) -> OrchestratorClient:
        assert self.client is not None
        return self.client

    # ------------------------------------------------------------ watch
    def _follow(self, run_id: int) -> int:
        run = self._watch_interruptible(run_id)
        outcome = fetch_results(self._api(), run, self.opts.results_dir)
        self._remember_durations(run_id)
        if self._stopped_on_error:
            outcome.exit_code = EXIT_ERROR
        self._report(outcome)
        return outcome.exit_code

    def _remember_durations(self, run_id: int) -> None:
        """Task durations and VM boot figures for the next --dry-run's estimate; never fails
        the run."""
        if self._plan is None:
            return
        try:
            tasks = self._api().tasks(run_id).tasks
            record_durations(self._plan.state_dir, self._plan.spec, tasks)
            record_boot_times(cloudbench_home(), run_id, self._api().machines(run_id).machines)
        except Exception as exc:  # an estimate aid, not a result
            logger.warning("cannot record task durations: %s", exc)

    def _watch_interruptible(self, run_id: int) -> RunOut:
        while True:
            try:
                return self._watch(run_id)
            except KeyboardInterrupt as exc:
                if not isinstance(exc, Terminated) and not self._confirm_teardown():
                    continue
            except RunnersExited as exc:
                # That type stops; the others go on. Exit 1 at the end.
                self._stopped_on_error = True
                self.err.print(f"error: {exc}", markup=False, soft_wrap=True)
                if self._stop_type(run_id, exc):
                    continue
            except (Stalled, StopRun) as exc:
                self._stopped_on_error = isinstance(exc, Stalled)
                self.err.print(f"error: {exc}", markup=False, soft_wrap=True)
            self.console.print(f"stopping run {run_id} and collecting what exists …")
            self._api().stop_run(run_id)
            # A second Ctrl-C from here on propagates: teardown without further questions.
            return self._watch(run_id)

    def _stop_type(self, run_id: int, exc: RunnersExited) -> bool:
        self.console.print(f"stopping {exc.alias}'s tasks; the other types go on", soft_wrap=True)
        try:
            self._api().stop_type(run_id, exc.provider, exc.alias, str(exc))
        except ApiError as error:  # an older orchestrator: stop the whole run
            logger.warning("cannot stop only %s (%s): stopping the run", exc.alias, error)
            return False
        return True

    def _watch(self, run_id: int) -> RunOut:
        if self._watcher is None:  # one for the command: it remembers since when all idled
            self._watcher = RunWatcher(
                self.console,
                self._api(),
                self.providers,
                self.embedded,
                self.opts.heartbeat_timeout,
            )
        return self._watcher.watch(run_id)

    def _confirm_teardown(self) -> bool:
        if self.opts.yes or not self.console.is_terminal:
            return True
        return Confirm.ask(
            "Stop the run now, download what exists and tear everything down?",
            console=self.console,
            default=True,
        )

    # ------------------------------------------------------------ finish
    def _report(self, outcome: Outcome) -> None:
        print_summary(self.console, outcome)
        if self.opts.report_args is not None and outcome.results_dir:
            write_report(self.console, self.err, Path(outcome.results_dir), self.opts.report_args)
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
            containers.remove_ours(self.run_id, self.adopted.orchestrator_url)
        if not left:
            self.adopted.remove()

    def _hurry_up(self, _signum: int, _frame: FrameType | None) -> None:
        self.hurry = True


def _safely(func: Callable[..., object], *args: object) -> None:
    try:
        func(*args)
    except Exception:
        logger.exception("teardown step failed")
