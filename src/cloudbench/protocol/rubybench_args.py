"""`benchmarks.extra_args`: the ruby-bench options a config may pass, and their shapes.

ruby-bench (`run_benchmarks.rb`, lib/argument_parser.rb at the pinned commit) takes
options that name programs and files: `-e NAME::COMMAND` and `--chruby` choose the Ruby
command line, `--harness` a harness directory, `--with_pre-init` a file every benchmark
requires, `--yjit_opts` Ruby options, `--out_path`/`--out-name` where results go. Any of
them in a config would run whatever the config says on every runner (as root in the
runner image), so extra_args is an allowlist: only options that change what is
measured or shown, each as one `--flag` or `--flag=VALUE` token whose value has a fixed
shape. OptionParser accepts abbreviations (`--harn`) and separate values
(`--harness x`); exact tokens refuse both. Everything cloudbench sets itself (executables,
iterations, categories, names) has its own field.
"""

from __future__ import annotations

import re

# ruby-bench boolean flags that change only what is measured or printed.
FLAGS = frozenset({"--rss", "--pvalue", "--once", "--turbo"})
_NAMES = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(,[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,199}"
_STATS = r"[a-z0-9_]{1,64}(,[a-z0-9_]{1,64}){0,99}"
# `--flag=VALUE` options and the shape their value must have.
VALUED = {
    "--excludes": re.compile(_NAMES),
    "--name_filters": re.compile(_NAMES),
    "--yjit-stats": re.compile(_STATS),
    "--zjit-stats": re.compile(_STATS),
}
# Options with a field of their own: the message names it.
HAS_FIELD = {
    "-e": "benchmarks.executables",
    "--skip-yjit": "benchmarks.executables",
    "--warmup": "benchmarks.warmup_iterations",
    "--bench": "benchmarks.bench_iterations",
    "--category": "benchmarks.categories",
    "--headline": "benchmarks.categories",
}


def _allowed() -> str:
    return ", ".join([*sorted(FLAGS), *(f"{k}=…" for k in sorted(VALUED))])


def extra_arg_problem(arg: str) -> str | None:
    """Why `arg` may not go to ruby-bench, or None when it may."""
    if arg in FLAGS:
        return None
    flag, eq, value = arg.partition("=")
    if flag in VALUED:
        if not eq:
            return f"{arg!r} needs a value as {flag}=VALUE (one token)"
        if not VALUED[flag].fullmatch(value):
            shape = "benchmark names" if "name" in flag or "exclude" in flag else "stat names"
            return f"{arg!r}: the value must be comma-separated {shape}"
        return None
    for option, field in HAS_FIELD.items():
        if flag == option or (option == "-e" and arg.startswith("-e")):
            return f"{arg!r} is set with {field}, not extra_args"
    if not arg.startswith("-"):
        return f"{arg!r}: benchmark names go in benchmarks.names, not extra_args"
    return f"{arg!r} is not an allowed ruby-bench option; allowed: {_allowed()}"
