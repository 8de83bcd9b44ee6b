"""Finalization: the archive is built exactly once however often it is triggered."""

from __future__ import annotations

import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cloudbench.orchestrator.archive_worker import build_pending_archives
from cloudbench.orchestrator.db import migrate
from cloudbench.orchestrator.db import runs as db_runs
from cloudbench.orchestrator.db.engine import make_engine, make_session_factory
from cloudbench.orchestrator.storage.base import archive_key
from cloudbench.orchestrator.storage.local import LocalStorage
from cloudbench.protocol import RunSpec


def test_double_trigger_builds_once(db_url: str, tmp_path: Path) -> None:
    migrate.upgrade(db_url)
    factory = make_session_factory(make_engine(db_url))
    storage = LocalStorage(tmp_path / "store", "http://127.0.0.1:1", b"k" * 32)
    spec = RunSpec.model_validate(
        {"ruby_version": "3.4.7", "per_instance_type": {"tasks": 3}, "local": ["box"]}
    )
    with factory() as session:
        run, _ = db_runs.create_run(session=session, spec=spec)
        session.commit()
        run_id = run.external_id
    with factory() as session:
        db_runs.stop_run(session=session, external_id=run_id)
        session.commit()
    with ThreadPoolExecutor(4) as pool:
        built = [
            b
            for r in pool.map(lambda _: build_pending_archives(factory, storage), range(4))
            for b in r
        ]
    assert built == [run_id]
    assert build_pending_archives(factory, storage) == []
    with factory() as session:
        stored = db_runs.require_run(session=session, external_id=run_id)
        assert (stored.archive_state, stored.archive_key) == ("ready", archive_key(run_id))
    with tarfile.open(storage.path_for(archive_key(run_id))) as tar:
        assert tar.getnames() == ["manifest.json"]
        manifest = tar.extractfile("manifest.json")
        assert manifest is not None and b'"removed_tasks": 3' in manifest.read()
