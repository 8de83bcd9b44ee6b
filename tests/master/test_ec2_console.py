"""The cause line the master takes from a VM's serial console (master/ec2_states.py).

The console texts are shaped as the runner user-data's EXIT trap writes them (a header,
then the last lines of its log ending with its own "failed at step" line), with what a
real console adds around them; the twin test (tests/twin/test_e2e.py) reads a real one.
"""

from __future__ import annotations

from cloudbench.master.ec2_states import cause_line

STEP = "installing what reads the runner token (python3-boto3)"
TRAP = f"""[   12.3] cloud-init[812]: Cloud-init v. 24.1 running 'modules:final'
cloudbench i-0abc: reading instance metadata (IMDSv2)
cloudbench i-0abc: {STEP}
cloudbench i-0abc: boot failed at step '{STEP}' (exit 100); last lines:
cloudbench: installing what reads the runner token (python3-boto3)
Reading package lists...
+ traced line that is not the cause
E: Unable to fetch some archives, maybe run apt-get update
cloudbench: failed at step '{STEP}' (exit 100)
[   15.0] reboot: Power down
"""


def test_a_failed_boot_gives_its_step_and_the_failed_commands_last_line() -> None:
    assert cause_line(TRAP) == (
        "console: boot failed at step 'installing what reads the runner token "
        "(python3-boto3)' (exit 100): E: Unable to fetch some archives, maybe run apt-get update"
    )


def test_without_a_failure_the_last_step_reached_is_given() -> None:
    text = TRAP.split("cloudbench i-0abc: boot failed")[0]
    assert cause_line(text) == (
        "console: last boot step 'installing what reads the runner token (python3-boto3)'"
    )
    assert cause_line("[    0.0] Linux version 6.8\n\n") is None
    assert cause_line("") is None


def test_secrets_and_control_characters_never_reach_the_line() -> None:
    text = TRAP.replace(
        "E: Unable to fetch some archives, maybe run apt-get update",
        "\x1b[31mcurl: Authorization: Bearer s3cr3t-value token=abc123\x07",
    )
    line = cause_line(text)
    assert line is not None and "s3cr3t" not in line and "abc123" not in line
    assert "\x1b" not in line and "\x07" not in line and line.endswith("token=***")
    long = TRAP.replace("E: Unable", "E: " + "x" * 1000)
    assert len(cause_line(long) or "") == 300
