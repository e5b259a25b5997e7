"""The dashboard server's CPU priority (training/system/priority.py): the rule, and the real kernel call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from training.system import priority

ROOT = Path(__file__).resolve().parent.parent
AUTOGROUPS = priority.autogroup_nice() is not None
# A child that lowers itself as navigation.py does, then reports its autogroup line and the verdict.
CHILD = ("from training.system import priority; from pathlib import Path; import sys; "
         "done = priority.lower_once({}); print(Path('/proc/self/autogroup').read_text().split()[-1]); "
         "print(done)")


@pytest.mark.parametrize(("autogroups", "leader", "terminal", "current", "action"), [
    (True, True, False, 0, "lower"),
    (True, False, True, 0, "lower and restore"),
    (True, False, False, 0, "leave"),  # pytest's own session: lowering it would slow the tests' browser
    (False, True, True, 0, "leave"),  # a thread nice would pass to the workers the dashboard starts
    (True, True, False, 10, "leave"),  # already there (a second server in the session)
    (True, True, False, 15, "leave"),  # never raised: that would need privileges, and was chosen
])
def test_the_rule_lowers_only_a_group_that_is_the_servers_or_its_terminals(autogroups, leader, terminal,
                                                                             current, action):
    assert priority.plan(autogroups, leader, terminal, current, 10)[0] == action


def test_the_nice_value_comes_from_the_environment_with_a_clear_error():
    assert priority.target_nice({}) == priority.DEFAULT_NICE
    assert priority.target_nice({priority.ENV: "5"}) == 5
    for bad in ("20", "-1", "low"):
        with pytest.raises(ValueError, match=f"{priority.ENV} must be a whole number from 0 to 19"):
            priority.target_nice({priority.ENV: bad})


@pytest.mark.skipif(not AUTOGROUPS, reason="the kernel does not group scheduling by session here")
def test_a_server_leading_its_own_session_really_gets_a_lower_autogroup():
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True,
                         start_new_session=True, stdin=subprocess.DEVNULL, check=True).stdout.splitlines()
    assert out[0] == str(priority.DEFAULT_NICE), out
    assert out[1].startswith("autogroup nice 10"), out


@pytest.mark.skipif(not AUTOGROUPS, reason="the kernel does not group scheduling by session here")
def test_a_server_inside_the_tests_session_leaves_it_alone():
    before = priority.autogroup_nice()
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, check=True).stdout.splitlines()
    assert out[0] == str(before) and out[1].startswith("left alone"), out
    assert priority.autogroup_nice() == before
