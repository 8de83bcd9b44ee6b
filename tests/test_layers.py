"""Who may import whom (docs/architecture.md): components meet only in protocol/platform.

Every `import` in src/ counts, including ones inside functions and TYPE_CHECKING blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cloudbench"
COMPONENTS = ("orchestrator", "runner", "master", "nuke", "report")
ALLOWED = {
    "protocol": {"protocol"},
    "platform": {"protocol", "platform"},
    **{c: {"protocol", "platform", c} for c in COMPONENTS},
}


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else ""


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "cloudbench":  # `from cloudbench import master`
                found += [(node.lineno, f"cloudbench.{a.name}") for a in node.names]
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        own = _package_of(path)
        allowed = ALLOWED.get(own)
        if allowed is None:  # cloudbench/cli.py and __main__ wire the components together
            continue
        for line, module in _imported(ast.parse(path.read_text(), str(path))):
            parts = module.split(".")
            if parts[0] != "cloudbench" or len(parts) == 1 or parts[1] == "__version__":
                continue
            if parts[1] not in allowed:
                problems.append(f"{path.relative_to(SRC)}:{line}: {own} imports {module}")
    return problems


def test_components_import_only_protocol_platform_and_themselves() -> None:
    assert _violations() == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "cloudbench"
    (fake / "nuke").mkdir(parents=True)
    (fake / "nuke" / "x.py").write_text("def f():\n    from cloudbench.master import stacks\n")
    (fake / "platform").mkdir()
    (fake / "platform" / "y.py").write_text("import cloudbench.runner.slots\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["SRC"]), "SRC", fake)
    assert _violations() == [
        "nuke/x.py:2: nuke imports cloudbench.master",
        "platform/y.py:1: platform imports cloudbench.runner.slots",
    ]
