"""Every Terraform module, prepared exactly as the master prepares it (Stack.prepare on
module_dir), only references files that exist inside the prepared working copy.

The master runs terraform in a copy under its state directory, so a `${path.module}/..`
path that leaves the module (as infrastructure/meta once did for deploy/compose.yaml)
works from a checkout and fails in every real deployment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloudbench.master.providers.driver import MODULES
from cloudbench.master.stacks import module_dir
from cloudbench.platform.stacks import AwsSettings, Stack

STACKS = {"meta": "meta", **MODULES}
# Files the master itself adds to a working copy (master/stacks.py, providers/driver.py).
MASTER_SUPPLIED = {
    "meta": ("/dist/",),
    "aws": ("/ruby-bench.tar.gz", "/wheelhouse-", "/${var.benchmark_image.file"),
}
# Each function that reads a file from disk at plan time.
FILE_CALL = re.compile(r"\b(file|filebase64|filesha256|filemd5|templatefile|fileexists)\(\s*")
PATH_REF = re.compile(r"\$\{path\.module\}([^\"}]*)")


def _prepared(tmp_path: Path, name: str) -> Path:
    stack = Stack(name, tmp_path / name, tmp_path / f"{name}.log", AwsSettings())
    stack.prepare(module_dir(stack.settings, STACKS[name]))
    return stack.workdir


@pytest.mark.parametrize("name", sorted(STACKS))
def test_every_path_module_reference_resolves_inside_the_copy(tmp_path: Path, name: str) -> None:
    workdir = _prepared(tmp_path, name)
    root = workdir.resolve()
    references = 0
    for tf in sorted(workdir.rglob("*.tf")):
        text = tf.read_text(encoding="utf-8")
        for call in FILE_CALL.finditer(text):
            argument = text[call.end() : call.end() + 200]
            # Relative to the working directory or absolute would escape the copy too.
            assert argument.startswith('"${path.module}/'), f"{tf.name}: {call.group(0)}{argument}"
        for ref in PATH_REF.finditer(text):
            target = workdir / ref.group(1).lstrip("/")
            if ref.group(1).startswith(MASTER_SUPPLIED.get(name, ("-",))):
                # Put into the copy by the master before it applies (its wheel, the suite).
                assert target.resolve().is_relative_to(root), f"{tf.name}: {ref.group(0)}"
                continue
            assert target.is_file(), f"{tf.name}: {ref.group(0)} is not a file in the copy"
            assert not target.is_symlink(), f"{tf.name}: {ref.group(0)} is a link"
            assert target.resolve().is_relative_to(root), f"{tf.name}: {ref.group(0)} escapes"
            references += 1
    assert references, f"{name}: no ${{path.module}} reference found; the scan is broken"


def test_meta_copy_holds_no_links(tmp_path: Path) -> None:
    workdir = _prepared(tmp_path, "meta")
    assert not any(path.is_symlink() for path in workdir.rglob("*"))
