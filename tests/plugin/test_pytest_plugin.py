"""The pytest plugin, run on real test files with ``pytester``."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from ..artifacts.checkers import mermaid_problems, perfetto_problems
from ..conftest import run_cli

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")

RACE = """
from concsim.kernel import Mutex


def counter_world(locked):
    def build(rt):
        lock = Mutex(rt, "lock")
        state = {"n": 0}

        async def inc():
            if locked:
                await lock.lock()
            await rt.point("load", "n", read=True)
            v = state["n"]
            await rt.point("store", "n", v + 1)
            state["n"] = v + 1
            if locked:
                await lock.unlock()

        rt.add_final_hook(lambda rt: rt.check(state["n"] == 2, f"lost update: n={state['n']}"))
        return [inc(), inc()]

    return build


def test_locked(concsim_explore):
    res = concsim_explore(counter_world(True), schedules=50)
    assert res.ok and res.schedules == 50


def test_race(concsim_explore):
    concsim_explore(counter_world(False), schedules=50)
"""


def _replay_cmd(out: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if "replay with: pytest " in ln)
    return shlex.split(line.split("replay with: ", 1)[1])


def test_passing_and_failing_adhoc_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=RACE)
    r = pytester.runpytest("-q")
    r.assert_outcomes(passed=1, failed=1)
    out = r.stdout.str()
    assert "concsim: adhoc:counter_world.<locals>.build: failure in schedule #" in out
    assert "FAILURE assertion at step" in out
    assert "lost update: n=1" in out
    assert re.search(r"^>>\s+\d+\s+inc\d\s+store", out, re.M), "failing step not marked"
    assert re.search(r"schedule: cs1:\S+ \((\d+ choices, not shrunk|shrunk from cs1:\S+)\)", out)
    cmd = _replay_cmd(out)
    assert cmd[:3] == ["pytest", "test_counter.py::test_race", "--concsim-replay"]
    saved = Path(cmd[3])
    assert saved.parent == pytester.path / ".pytest_cache" / "d" / "concsim"
    data = json.loads(saved.read_text())
    assert data["extra"] == {
        "pytest_nodeid": "test_counter.py::test_race",
        "call": 0,
        "adhoc": True,
    }
    assert data["expected"]["failure"]["kind"] == "assertion"


def test_replay_option_reruns_the_saved_schedule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=RACE)
    first = pytester.runpytest("-q")
    cmd = _replay_cmd(first.stdout.str())
    schedule = re.search(r"schedule: (cs1:\S+)", first.stdout.str()).group(1)

    # Exactly the command the report printed: the one test, that one schedule.
    again = pytester.runpytest(*cmd[1:], "-q")
    again.assert_outcomes(failed=1)
    out = again.stdout.str()
    assert "failure in the replayed schedule" in out
    assert f"schedule: {schedule} " in out
    assert "lost update: n=1" in out

    # On the whole file: the tests the file is not for are skipped.
    whole = pytester.runpytest("test_counter.py", "-q", "-rs", *cmd[2:])
    whole.assert_outcomes(failed=1, skipped=1)
    assert "is for test_counter.py::test_race" in whole.stdout.str()

    # The concsim CLI points at the pytest command for an ad-hoc file.
    p = run_cli("replay", cmd[3])
    assert p.returncode == 2
    assert "rerun it with: pytest test_counter.py::test_race --concsim-replay" in p.stderr


@pytest.mark.parametrize("view", ["text", "perfetto", "mermaid"])
def test_trace_option_writes_the_view_of_an_adhoc_failure(
    pytester: pytest.Pytester, view: str
) -> None:
    pytester.makepyfile(test_counter=RACE)
    r = pytester.runpytest("-q", "--concsim-trace", view)
    r.assert_outcomes(passed=1, failed=1)
    line = next(ln for ln in r.stdout.str().splitlines() if ln.startswith(f"{view} trace: "))
    text = Path(line.split(": ", 1)[1]).read_text()
    if view == "perfetto":
        doc = json.loads(text)
        assert perfetto_problems(doc) == []
        assert [e["cat"] for e in doc["traceEvents"] if e.get("cat") == "failure"] == ["failure"]
    elif view == "mermaid":
        assert mermaid_problems(text) == []
        assert "FAILURE assertion" in text.splitlines()[-1]
    else:
        assert any(ln.startswith(">>") for ln in text.splitlines())


def test_replay_of_a_bad_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=RACE)
    bad = pytester.path / "bad.json"
    bad.write_text("{}")
    r = pytester.runpytest("--concsim-replay", str(bad))
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "--concsim-replay: " in r.stderr.str()


def test_seed_option_moves_the_exploration_and_is_deterministic(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_counter=RACE)

    def failing_seed(*args: str) -> tuple[int, str]:
        r = pytester.runpytest("-q", "-k", "test_race", *args)
        r.assert_outcomes(failed=1)
        out = r.stdout.str()
        m = re.search(r"failure in schedule #(\d+) \(seed (\d+),", out)
        assert m is not None, out
        body = out[out.index("concsim: adhoc") : out.index("replay with")]
        return int(m.group(2)) - int(m.group(1)), body

    base0, report0 = failing_seed()
    base100, report100 = failing_seed("--concsim-seed", "100")
    assert (base0, base100) == (0, 100)
    assert report0 != report100
    assert failing_seed("--concsim-seed", "100") == (base100, report100)
    assert "concsim: seed 100" in pytester.runpytest("--concsim-seed", "100").stdout.str()


def test_marker_explores_a_registered_scenario(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.concsim("counter", variant="locked", schedules=30)
        def test_locked_counter():
            pass

        @pytest.mark.concsim(scenario="counter", variant="racy", schedules=100)
        def test_racy_counter():
            raise AssertionError("the body runs only after a clean exploration")

        @pytest.mark.concsim("counter", variant="racy", schedules=100, expect="assertion")
        def test_racy_counter_is_caught():
            pass

        @pytest.mark.concsim("abba", variant="ordered", schedules=20, expect="deadlock")
        def test_expected_failure_not_found():
            pass

        @pytest.mark.concsim("counter", schedules=1, params={"tasks": 3})
        def test_params(request):
            pass
        """
    )
    r = pytester.runpytest("-q")
    r.assert_outcomes(passed=3, failed=2)
    out = r.stdout.str()
    assert "the body runs only" not in out
    assert "concsim: counter: failure in schedule #2 (seed 2" in out
    assert "expected a deadlock in 20 schedules of abba (seed 0), found none" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("replay with: concsim replay"))
    path = line.split()[-1]
    assert f"or: pytest test_marked.py::test_racy_counter --concsim-replay {path}" in out
    # A scenario's replay file also replays with the concsim CLI.
    p = run_cli("replay", path, "--json")
    assert p.returncode == 1
    assert json.loads(p.stdout.strip().splitlines()[-1])["reproduced"] is True
    # ... and with pytest, through the marker.
    again = pytester.runpytest("-q", "test_marked.py::test_racy_counter", "--concsim-replay", path)
    again.assert_outcomes(failed=1)
    assert "failure in the replayed schedule" in again.stdout.str()


def test_schedules_option_overrides_the_tests_count(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_few="""
        import pytest

        @pytest.mark.concsim("counter", variant="racy", schedules=1)
        def test_one_schedule_misses_the_race():
            pass
        """
    )
    pytester.runpytest("-q").assert_outcomes(passed=1)  # seed 0 happens not to race
    pytester.runpytest("-q", "--concsim-schedules", "50").assert_outcomes(failed=1)


def test_marker_errors_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.concsim("counter", schedule=3)
        def test_typo():
            pass
        """
    )
    r = pytester.runpytest("-q")
    assert "unknown concsim marker argument(s) ['schedule']" in r.stdout.str() + r.stderr.str()
    assert r.ret != pytest.ExitCode.OK


def test_model_errors_are_reported_not_crashing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_models="""
        builds = [0]

        def test_nondeterministic(concsim_explore):
            # State kept across schedules: only the third world fails, so its replay
            # (the fourth) does not.
            def build(rt):
                builds[0] += 1
                n = builds[0]
                async def t():
                    await rt.point("x", "o")
                    rt.check(n != 3, "third build")
                return [t()]
            concsim_explore(build, schedules=10)

        def test_returns_function(concsim_explore):
            def build(rt):
                async def t():
                    pass
                return [t]
            concsim_explore(build)

        def test_unknown_scenario(concsim_explore):
            concsim_explore("no-such-scenario")
        """
    )
    r = pytester.runpytest("-q")
    r.assert_outcomes(failed=3)
    out = r.stdout.str()
    assert "the model is not deterministic" in out
    assert "(call the async function: t(), not t)" in out
    assert "unknown scenario 'no-such-scenario'" in out
    assert "During handling" not in out


ASYNC_TESTS = """
import anyio
import pytest
import concsim


BUILT = [0]


def build(rt):
    BUILT[0] += 1
    state = {"n": 0}

    async def inc():
        await rt.point("load", "n", read=True)
        v = state["n"]
        await rt.point("store", "n", v + 1)
        state["n"] = v + 1

    rt.add_final_hook(lambda rt: rt.check(state["n"] == 2, "lost update"))
    return {"a": inc(), "b": inc()}


async def _host_ticks(results):
    # A host task that must keep running while concsim explores: it proves the
    # exploration yields to the host loop between schedules.
    for _ in range(5):
        await anyio.lowlevel.checkpoint()
        results.append(BUILT[0])


{marker}
async def test_async_fixture_finds_the_race(concsim_explore):
    ticks = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_host_ticks, ticks)
        res = await concsim_explore.check_async(build, schedules=100, expect="assertion")
    # The host task ran while worlds were being built, not only before or after.
    assert any(0 < t < BUILT[0] for t in ticks), ticks
    assert res.failing is not None and res.failing.failure.message == "lost update"
    sync = concsim.check(build, schedules=100)
    assert (sync.index, sync.failing.schedule) == (res.index, res.failing.schedule)


{marker}
async def test_async_run_api():
    results = await concsim.run_async("counter", variant="racy", seeds=range(20))
    assert not results[-1].ok


{marker}
@pytest.mark.concsim("counter", variant="racy", schedules=50)
async def test_async_marked_test_fails_with_the_report():
    await anyio.lowlevel.checkpoint()


{marker}
async def test_async_failure_is_reported(concsim_explore):
    await concsim_explore.check_async(build, schedules=100)
"""


def test_works_under_pytest_trio_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_async=ASYNC_TESTS.replace("{marker}", ""))
    r = pytester.runpytest_subprocess("-q", "-p", "no:anyio")
    r.assert_outcomes(passed=2, failed=2)
    out = r.stdout.str()
    # Each failing test prints its report exactly once in the FAILURES
    # section.  The short summary that follows repeats the message in full
    # when the CI environment variable is set (pytest stops truncating it
    # there), so count only up to it.
    failures = out.split("short test summary info")[0]
    assert failures.count("replay with: ") == 2
    assert "test_async.py::test_async_failure_is_reported --concsim-replay" in out


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_works_under_anyio_plugin(pytester: pytest.Pytester, backend: str) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_async=ASYNC_TESTS.replace("{marker}", "@pytest.mark.anyio"),
        conftest=f"""
        import pytest

        @pytest.fixture
        def anyio_backend():
            return {backend!r}
        """,
    )
    r = pytester.runpytest_subprocess("-q", "-p", "no:trio")
    r.assert_outcomes(passed=2, failed=2)
    assert "replay with: pytest test_async.py::test_async_failure_is_reported" in r.stdout.str()


ASYNC_RACE = """
import pytest
from concsim.sync import Mutex


def build(rt, locked=False):
    box = {"n": 0}
    lock = Mutex(rt, "lock")

    async def inc():
        if locked:
            await lock.lock()
        await rt.point("read", "n", read=True)
        v = box["n"]
        await rt.point("write", "n")
        box["n"] = v + 1
        if locked:
            await lock.unlock()

    rt.spawn("a", inc())
    rt.spawn("b", inc())
    rt.add_final_hook(lambda rt: rt.check(box["n"] == 2, "lost update"))


@pytest.mark.trio
async def test_trio_race(concsim_explore):
    await concsim_explore.check_async(build, schedules=100)


@pytest.mark.anyio
async def test_anyio_race(concsim_explore):
    await concsim_explore.check_async(build, schedules=100)


@pytest.mark.trio
async def test_trio_locked(concsim_explore):
    await concsim_explore.check_async(lambda rt: build(rt, locked=True), schedules=100)
"""


def test_async_failures_are_one_clean_failure_with_the_message_in_ra(
    pytester: pytest.Pytester,
) -> None:
    """Issue 14: under pytest-trio a failure showed an ExceptionGroup traceback through the
    plugin, and the -ra line hid the failure message."""
    pytester.makepyfile(test_async_race=ASYNC_RACE)
    r = pytester.runpytest("-ra", "-vv")
    r.assert_outcomes(passed=1, failed=3)
    out = r.stdout.str()
    assert "ExceptionGroup" not in out
    assert "Traceback" not in out
    for node in ("test_trio_race", "test_anyio_race[asyncio]", "test_anyio_race[trio]"):
        pattern = node.replace("[", "?").replace("]", "?")  # fnmatch reads [..] as a class
        r.stdout.fnmatch_lines([f"FAILED test_async_race.py::{pattern} - *assertion: lost update"])
