"""The environment ruby-bench runs with: an allowlist, never the runner's own environment.

A runner started with RUBY_YJIT_ENABLE=1 or RUBYOPT in its shell must not turn the `interp`
column into YJIT numbers, so only what locale, paths and the suite need passes, plus what
the config sets on purpose (`benchmarks.env`, validated in the protocol).
"""

from __future__ import annotations

from collections.abc import Mapping

PASSED = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME"})
# Version managers (chruby, rbenv gems) point the Ruby at its gems with these.
PASSED_GEMS = frozenset({"GEM_HOME", "GEM_PATH"})
# What official ruby images set in their own ENV; harmless to the measurement.
IMAGE_BENIGN = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "GEM_HOME",
        "BUNDLE_SILENCE_ROOT_WARNING",
        "BUNDLE_APP_CONFIG",
        "RUBY_MAJOR",
        "RUBY_VERSION",
        "RUBY_DOWNLOAD_SHA256",
        "RUBY_DOWNLOAD_URL",
        "HOSTNAME",
        "container",
        "TERM",
    }
)
# Harness variables cloudbench itself sets from the config (--warmup/--bench, min time).
HARNESS = frozenset({"MIN_BENCH_TIME", "WARMUP_ITRS", "MIN_BENCH_ITRS"})


def _allowed(key: str) -> bool:
    return key in PASSED or key in PASSED_GEMS or key.startswith("LC_")


def host_environment(
    parent: Mapping[str, str], harness: Mapping[str, str], configured: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """(environment for ruby-bench, names of the runner's variables left out)."""
    env = {k: v for k, v in parent.items() if _allowed(k)}
    dropped = sorted(k for k in parent if not _allowed(k))
    env.update(harness)
    env.update(configured)
    return env, dropped


def unexpected_keys(
    env: Mapping[str, str], configured: Mapping[str, str], image: bool
) -> list[str]:
    """Variables in the benchmark's environment that neither the allowlist nor the config
    explains; any of them makes `checks.env_clean` false."""
    extra = []
    for key in env:
        if _allowed(key) or key in HARNESS or key in configured:
            continue
        if image and key in IMAGE_BENIGN:
            continue
        extra.append(key)
    return sorted(extra)
