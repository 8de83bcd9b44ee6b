"""The contracts in cloudbench.protocol: versioned files, the error envelope, enums."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloudbench.protocol import (
    MANIFEST_VERSION,
    ErrorType,
    FailRequest,
    Manifest,
    Metadata,
    RunSpec,
    error_body,
    error_message,
)

TASK = {
    "task_id": 7,
    "provider": "local",
    "instance_type": "m",
    "alias": None,
    "status": "completed",
    "directory": "m-7",
}
META = {
    "task_id": 1,
    "run_id": 2,
    "provider": "local",
    "instance_type": "m",
    "alias": "m",
    "run_number": 1,
    "runner_id": "r",
    "lease": 1,
    "ruby_version": "3.4",
    "benchmarks": {"names": ["fib"]},
    "ruby_bench_source": "/x",
    "ruby_bench_content_id": "abc",
    "executor": "host",
    "cpuset": "0",
    "cloudbench_version": "0.1.0",
}


def test_manifest_formats_1_and_2_read_and_a_newer_one_is_refused() -> None:
    # Format 3 (format 2's attempt/attempts, plus ruby_versions and counts) is written now.
    written = Manifest(format_version=MANIFEST_VERSION, tasks=[TASK], run_id=3).to_json()
    assert MANIFEST_VERSION == 3 and b'"format_version": 3' in written
    two = Manifest.model_validate({"format_version": 2, "tasks": [TASK]})
    assert two.counts == [] and two.tasks[0].ruby_versions == []
    # Format 1, with and without the key: attempt 1, no history.
    for old in ({"tasks": [TASK], "run_id": 3}, {"format_version": 1, "tasks": [TASK]}):
        manifest = Manifest.model_validate(old)
        assert manifest.format_version == 1 and manifest.tasks[0].label == "m"
        assert manifest.tasks[0].attempt == 1 and manifest.tasks[0].attempts == []
    with pytest.raises(ValidationError, match="newer than this cloudbench reads"):
        Manifest.model_validate({"format_version": 4, "tasks": [TASK]})
    with pytest.raises(ValidationError, match="is not a version"):
        Manifest.model_validate({"format_version": 0, "tasks": [TASK]})


def test_manifest_keeps_error_types_it_does_not_know() -> None:
    task = {**TASK, "status": "failed", "error": {"type": "from_the_future", "message": "x"}}
    manifest = Manifest.model_validate({"tasks": [task], "added_later": True})
    assert manifest.tasks[0].error is not None
    assert manifest.tasks[0].error.type == "from_the_future"


def test_metadata_writes_its_version_and_only_what_was_learned() -> None:
    data = Metadata.model_validate({**META, "exit_code": 0}).to_dict()
    assert data["format_version"] == 1 and data["exit_code"] == 0
    assert "ruby_description" not in data  # never learned: left out, as before
    assert data["benchmarks"]["executables"] == ["yjit"]  # defaults of nested settings kept
    with pytest.raises(ValidationError, match="newer than this cloudbench reads"):
        Metadata.model_validate({**META, "format_version": 9})


def test_fail_request_takes_only_error_types() -> None:
    ok = FailRequest(runner_id="r", error_type="timeout", error_message="slow")
    assert ok.error_type is ErrorType.timeout
    with pytest.raises(ValidationError, match="error_type"):
        FailRequest(runner_id="r", error_type="boom", error_message="x")


@pytest.mark.parametrize(
    "content,expected",
    [
        (b'{"error": "run 3 not found"}', "run 3 not found"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b"<html>bad gateway</html>", "<html>bad gateway</html>"),
        (b"[1, 2]", "[1, 2]"),
    ],
)
def test_error_message_reads_every_shape(content: bytes, expected: str) -> None:
    assert error_message(content) == expected


def test_error_envelope_round_trips() -> None:
    import json

    assert error_message(json.dumps(error_body("nope"))) == "nope"


def test_request_body_drops_ignored_keys_and_empty_providers() -> None:
    spec = RunSpec.model_validate(
        {"ruby_version": "3.4", "per_instance_type": {"tasks": 2}, "local": ["x"], "note": "hi"}
    )
    body = spec.request_body()
    assert set(body) == {"ruby_version", "per_instance_type", "benchmarks", "max_attempts", "local"}
    assert spec.providers() == ["local"] and spec.ignored == ["note"]
