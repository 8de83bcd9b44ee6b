"""The Ruby matrix in the config: several Rubies, three engines, tuned executables, per-type
counts — and configs from before keep their exact shape."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cloudbench.protocol import RunSpec
from cloudbench.protocol.executables import ExecutableSpec

MATRIX: dict[str, Any] = {
    "ruby_versions": ["3.4", "4.0"],
    "per_instance_type": {"tasks": 2},
    "aws": [
        {"instance_type": "c7g.large", "alias": "c7g", "tasks": 5, "instances": 2},
        "c7i.large",
    ],
    "benchmarks": {
        "names": ["fib"],
        "executables": [
            "interp",
            {"name": "yjit-64m", "jit": "yjit", "options": ["--yjit-mem-size=64"]},
            "zjit",
        ],
    },
}


def test_matrix_config_counts_columns_and_body() -> None:
    spec = RunSpec.model_validate(MATRIX)
    assert spec.rubies == ["3.4", "4.0"]
    counts = {s.instance_type: spec.counts(s) for _, s in spec.instance_types()}
    assert (counts["c7g.large"].tasks, counts["c7g.large"].instances) == (5, 2)
    assert (counts["c7i.large"].tasks, counts["c7i.large"].instances) == (2, 1)
    columns = spec.benchmarks.columns()
    assert [c.name for c in columns] == ["interp", "yjit-64m", "zjit"]
    assert columns[1].flags == ["--yjit", "--yjit-mem-size=64"] and columns[0].flags == []
    assert columns[2] == ExecutableSpec(name="zjit", jit="zjit")
    body = spec.request_body()
    assert body["ruby_versions"] == ["3.4", "4.0"] and "ruby_version" not in body
    assert body["aws"][0] == {
        "instance_type": "c7g.large",
        "alias": "c7g",
        "tasks": 5,
        "instances": 2,
    }
    # What the master posts, the orchestrator reads back unchanged.
    again = RunSpec.model_validate(body)
    assert again.normalized() == spec.normalized()


def test_old_config_keeps_its_exact_shape() -> None:
    old = {
        "ruby_version": "3.4",
        "per_instance_type": {"tasks": 3},
        "local": ["x"],
        "benchmarks": {"executables": ["interp", "yjit"]},
    }
    spec = RunSpec.model_validate(old)
    assert spec.rubies == ["3.4"]
    normalized = spec.normalized()
    assert normalized["ruby_version"] == "3.4" and "ruby_versions" not in normalized
    assert normalized["instance_types"] == [["local", "x", "x"]]
    assert normalized["benchmarks"]["executables"] == ["interp", "yjit"]
    assert RunSpec.model_validate({**old, "benchmarks": {}}).benchmarks.executables == ["yjit"]


@pytest.mark.parametrize(
    ("executables", "expected"),
    [
        (["interp", "mjit"], "item 1 ('mjit') is not an engine"),
        (
            [{"name": "i", "jit": "interp", "options": ["--yjit-mem-size=1"]}],
            "jit interp takes no options",
        ),
        (
            [{"name": "y", "jit": "yjit", "options": ["--yjit-x; rm -rf /"]}],
            "is not allowed for jit yjit",
        ),
        (
            [{"name": "y", "jit": "yjit", "options": ["--zjit-call-threshold=2"]}],
            "only --yjit-NAME",
        ),
        (["zjit", {"name": "zjit", "jit": "zjit"}], "the name 'zjit' is used twice"),
        ([{"name": "bad name", "jit": "yjit"}], "name: String should match pattern"),
    ],
)
def test_bad_executables_name_the_entry_and_the_fix(executables: list[Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RunSpec.model_validate({**MATRIX, "benchmarks": {"executables": executables}})
    assert expected in str(caught.value)


def test_exactly_one_ruby_key() -> None:
    with pytest.raises(ValidationError, match="both given"):
        RunSpec.model_validate({**MATRIX, "ruby_version": "3.4"})
    with pytest.raises(ValidationError, match="listed twice"):
        RunSpec.model_validate({**MATRIX, "ruby_versions": ["3.4", "3.4"]})
    with pytest.raises(ValidationError, match="at most 64 characters"):
        RunSpec.model_validate({**MATRIX, "ruby_versions": [f"3.{i}.{'1' * 20}" for i in range(4)]})


def _types(*entries: Any, per_type: int) -> dict[str, Any]:
    return {"ruby_version": "3.4", "per_instance_type": {"tasks": per_type}, "aws": list(entries)}


def test_run_bound_counts_each_entrys_own_tasks() -> None:
    """The 20,000-task bound (issue 25) sums each type's own tasks, else per_instance_type's."""
    # per_instance_type alone would be 3 x 10,000: the entries' own counts make it 10,002.
    a, b = {"instance_type": "a", "tasks": 1}, {"instance_type": "b", "tasks": 1}
    spec = RunSpec.model_validate(_types(a, b, "c", per_type=10_000))
    assert sum(spec.counts(s).tasks for _, s in spec.instance_types()) == 10_002
    with pytest.raises(ValidationError, match=r"tasks: 20001 tasks over 3 instance types"):
        a, b = {"instance_type": "a", "tasks": 10_000}, {"instance_type": "b", "tasks": 10_000}
        RunSpec.model_validate(_types(a, b, "c", per_type=1))
    with pytest.raises(ValidationError, match=r"aws\.0\.tasks"):
        RunSpec.model_validate(_types({"instance_type": "a", "tasks": 10_001}, per_type=1))
