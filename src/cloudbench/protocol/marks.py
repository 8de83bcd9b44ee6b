"""What cloudbench writes on cloud resources for another of its processes to read back.

The master admits an Azure run's NAT address at the orchestrator with one security-group
rule (master/providers/allowlist.py); `cloudbench nuke --run-id` finds that run's rules by
their description and revokes them (nuke/aws_listing.py). Tags cannot mark a rule that
Terraform does not manage and that outlives the run's own stacks.
"""

from __future__ import annotations


def nat_rule_description(run_id: int | str) -> str:
    """The description of a run's Azure-runners NAT entry in the orchestrator's group."""
    return f"cloudbench run {run_id}: azure runners (NAT)"
