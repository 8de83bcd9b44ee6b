"""Where each fact lives in metadata.json, for every format (docs/results.md).

Format 1 keeps everything at the top level. Formats 2 and 3 keep the format-1 keys
(`hostname`, `cpu_model`, `ruby_bench_commit`, ...) and add nested blocks (`instance`,
`cpu`, `ruby`, `machine`, `noise`, `slot`); some facts exist only there
(`ruby.ruby_bench_content_id`, `cpu.slot_mode`, the image, `instance.instance_id`,
`instance.region`). A reader asks for a fact by name and gets the first value found.
"""

from __future__ import annotations

from typing import Any

# fact → paths in metadata.json, the nested (format 2/3) one first.
PATHS: dict[str, tuple[str, ...]] = {
    "instance_id": ("instance.instance_id", "instance_id"),
    "hostname": ("hostname",),
    "region": ("instance.region", "region"),
    "cpu_model": ("cpu.model_name", "cpu_model"),
    "arch": ("cpu.arch", "arch"),
    "kernel": ("machine.kernel_release", "kernel"),
    "executor": ("executor",),
    "slot_mode": ("cpu.slot_mode", "slot_mode"),
    "image_id": ("ruby.image_id", "image_id"),
    "image_digest": ("ruby.base_image_digest", "image_digest"),
    "image_tag": ("ruby.image_tag", "image_tag"),
    "base_image": ("ruby.base_image",),
    "ruby_description": ("ruby.ruby_description", "ruby_description"),
    "ruby_bench_commit": ("ruby.ruby_bench_commit", "ruby_bench_commit"),
    "ruby_bench_content_id": ("ruby.ruby_bench_content_id", "ruby_bench_content_id"),
    "ruby_bench_source": ("ruby.ruby_bench_source", "ruby_bench_source"),
    "cloudbench_version": ("cloudbench_version",),
    "steal_pct": ("checks.steal_pct", "noise.steal_pct"),
    "cpu_pressure_some_pct": ("checks.cpu_pressure_some_pct", "noise.cpu_pressure_some_pct"),
}


def lookup(metadata: dict[str, Any], path: str) -> Any:
    value: Any = metadata
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def fact(metadata: dict[str, Any], name: str) -> Any:
    """The first non-empty value of `name` along its paths, else None."""
    for path in PATHS[name]:
        value = lookup(metadata, path)
        if value not in (None, ""):
            return value
    return None


def metadata_format(metadata: dict[str, Any]) -> int:
    version = metadata.get("format_version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 1
