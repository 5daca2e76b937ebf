"""Background jobs of the test session (tests/background.py): started at idle
priority, their output handed over once done, a failure reported as None (the
caller then computes in-process), everything removed at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import background
from tests.jobs import selftest


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Jobs of their own: the session's (tests/conftest.py) are left alone.
    monkeypatch.setattr(background, "_jobs", {})
    monkeypatch.setattr(background, "_dir", None)
    yield
    background.stop_all()


def test_a_job_runs_at_nice_19_and_its_output_is_handed_over() -> None:
    background.start(selftest.MODULE)
    out_dir = background._dir
    assert out_dir is not None
    background._jobs[selftest.MODULE].process.wait()  # done before anyone waited for it
    assert background.output(selftest.MODULE) == b"19"
    background.stop_all()
    assert not out_dir.exists()


def test_waiting_for_a_job_raises_it_to_normal_priority() -> None:
    """The job was still starting when output() was called: it finished at nice 0
    (this needs CAP_SYS_NICE, which CI's root has; elsewhere it stays at 19)."""
    background.start(selftest.MODULE)
    nice = background.output(selftest.MODULE)
    assert nice in (b"0", b"19")
    if os.geteuid() == 0:
        assert nice == b"0"


def test_a_job_started_twice_runs_once() -> None:
    background.start(selftest.MODULE)
    first = background._jobs[selftest.MODULE].process
    background.start(selftest.MODULE)
    assert background._jobs[selftest.MODULE].process is first


def test_a_failed_job_gives_none_and_its_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DS_JOB_FAIL", "1")
    background.start(selftest.MODULE)
    assert background.output(selftest.MODULE) is None
    assert "failing on purpose" in capsys.readouterr().out


def test_a_job_never_started_gives_none() -> None:
    assert background.output("tests.jobs.not_started") is None


def test_a_job_stays_in_the_suites_session_so_its_nice_value_counts() -> None:
    """Under autogroup scheduling a new session would be its own scheduling group."""
    background.start("tests.jobs.acceptance_matrix")  # minutes of work
    process = background._jobs["tests.jobs.acceptance_matrix"].process
    assert os.getsid(process.pid) == os.getsid(0)
    assert os.getpgid(process.pid) == process.pid != os.getpgid(0)
    assert os.getpriority(os.PRIO_PROCESS, process.pid) == 19


def test_stop_all_kills_a_running_job() -> None:
    background.start("tests.jobs.acceptance_matrix")  # minutes of work
    process = background._jobs["tests.jobs.acceptance_matrix"].process
    assert process.poll() is None
    background.stop_all()
    assert process.returncode is not None and process.returncode < 0
