"""Live progress of a run: a Rich table on a terminal, plain log lines otherwise."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from cloudbench.platform.timefmt import duration
from cloudbench.protocol import InstanceTypeProgress, RunOut, TaskCounts

# A cloud VM as the view shows it: alias, instance id, stage, since (how long), last line.
MachineRow = tuple[str, str, str, str, str]

LOG_EVERY = 10.0  # seconds between plain lines when nothing changed


def done(counts: TaskCounts) -> int:
    return counts.completed + counts.failed + counts.cancelled + counts.removed


def _age(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the orchestrator stores UTC
    return (datetime.now(UTC) - moment).total_seconds()


def eta(run: RunOut) -> float | None:
    """From the work done so far: finished tasks plus the running ones' progress (so an
    ETA shows before the first task ends), at the pace since the run was created."""
    total = run.tasks.total
    work = done(run.tasks) + sum(i.running_progress for i in run.instance_types)
    elapsed = _age(run.created_at)
    if work <= 0.01 or elapsed is None or done(run.tasks) >= total:
        return None
    return elapsed / work * max(total - work, 0.0)


def summary_line(run: RunOut) -> str:
    c = run.tasks
    return (
        f"run {run.run_id} {run.status}: {done(c)}/{c.total} done (completed {c.completed}, "
        f"failed {c.failed}, running {c.running + c.claimed}, pending {c.pending}), "
        f"elapsed {duration(_age(run.created_at))}, ETA {duration(eta(run))}"
    )


class ProgressView:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.interactive = console.is_terminal
        self.live: Live | None = None
        self._last_state = ""
        self._last_at = 0.0
        self._machines: dict[str, tuple[str, str]] = {}  # id -> (stage, line) printed

    def __enter__(self) -> ProgressView:
        if self.interactive:
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def update_note(self, note: str) -> None:
        """A problem between updates (orchestrator unreachable): shown, not fatal."""
        if self.live is None:
            self.console.print(note, markup=False, highlight=False, soft_wrap=True)
        else:
            self.live.console.log(note)

    def update(self, run: RunOut, notes: list[str], machines: Sequence[MachineRow] = ()) -> None:
        if self.live is not None:
            self.live.update(render(run, notes, self.console.width, machines))
            return
        for note in notes:
            self.console.print(note, markup=False, highlight=False, soft_wrap=True)
        for alias, vm, stage, since, line in machines:
            # Plain output: one line per VM whenever its stage or last line changes.
            if self._machines.get(vm) != (stage, line):
                self._machines[vm] = (stage, line)
                text = f"vm {alias} {vm}: {stage} (for {since}) {line}".rstrip()
                self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        line = summary_line(run)
        # Elapsed changes every second: print on a state change or once per period.
        state = line.split(", elapsed")[0]
        now = time.monotonic()
        if state != self._last_state or now - self._last_at >= LOG_EVERY:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
            self._last_state, self._last_at = state, now


NARROW = 100  # below this many columns: shorter bars, no provider/type, no heartbeat age


def _row(item: InstanceTypeProgress, narrow: bool = False) -> list[RenderableType]:
    c = item.counts
    bar = ProgressBar(total=max(c.total, 1), completed=done(c), width=10 if narrow else 20)
    counts = Text.assemble(
        (f"✓{c.completed} ", "green"),
        (f"✗{c.failed + c.cancelled} ", "red"),
        (f"▶{c.running + c.claimed} ", "cyan"),
        (f"…{c.pending}", "dim"),
    )
    age = _age(item.oldest_heartbeat_at)
    name = (
        Text(item.alias)
        if narrow
        else Text.from_markup(f"{item.alias} [dim]({item.provider}/{item.instance_type})[/]")
    )
    row: list[RenderableType] = [
        name,
        Group(bar, Text(f"{done(c)}/{c.total}")),
        counts,
        ", ".join(item.current_benchmarks[:3]) or "-",
    ]
    return row if narrow else [*row, duration(age) if age is not None else "-"]


def render(
    run: RunOut, notes: list[str], width: int = 120, machines: Sequence[MachineRow] = ()
) -> RenderableType:
    narrow = width < NARROW
    table = Table(title=f"run {run.run_id} · Ruby {run.ruby_version} · {run.status}")
    table.add_column("instance type", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("tasks", no_wrap=True)
    table.add_column("current", overflow="fold")
    if not narrow:
        table.add_column("oldest heartbeat")
    for item in run.instance_types:
        table.add_row(*_row(item, narrow))
    c = run.tasks
    overall = Table.grid(padding=(0, 2))
    overall.add_row(
        "overall",
        ProgressBar(total=max(c.total, 1), completed=done(c), width=20 if narrow else 40),
        f"{done(c)}/{c.total}",
        f"elapsed {duration(_age(run.created_at))}",
        f"ETA {duration(eta(run))}",
    )
    parts: list[RenderableType] = [table, overall]
    if machines:
        vms = Table(title="machines")
        for column in ("instance type", "instance", "stage", "since", "last line"):
            vms.add_column(column)
        for alias, vm, stage, since, line in machines:
            style = "red" if stage in ("failed", "error") else ""
            vms.add_row(alias, vm, Text(stage, style), since, Text(line[:120]))
        parts.append(vms)
    parts += [Text(note, style="yellow") for note in notes[-5:]]
    return Group(*parts)


class StackView:
    """One spinner per Terraform stack while it applies or destroys; lines when not a TTY."""

    def __init__(self, console: Console, names: list[str]) -> None:
        self.console = console
        self.states = dict.fromkeys(names, "waiting")
        self.live: Live | None = None
        self._lock = threading.Lock()  # stacks report from worker threads

    def __enter__(self) -> StackView:
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=8)
            self.live.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.stop()
            self.live = None

    def set(self, name: str, state: str) -> None:
        with self._lock:
            self.states[name] = state
            if self.live is not None:
                self.live.update(self._render())
            else:
                self.console.print(
                    f"stack {name}: {state}", markup=False, highlight=False, soft_wrap=True
                )

    def _render(self) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        for name, state in self.states.items():
            mark: RenderableType = (
                Text("✓", "green")
                if state in ("applied", "destroyed")
                else Text("✗", "red")
                if state.startswith("failed")
                else Spinner("dots")
            )
            grid.add_row(mark, Text(f"stack {name}", "bold"), Text(state))
        return grid
