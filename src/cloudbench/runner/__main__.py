"""`python -m cloudbench.runner` = `cloudbench runner`."""

from cloudbench.runner.cli import runner_app

runner_app(prog_name="cloudbench runner")
