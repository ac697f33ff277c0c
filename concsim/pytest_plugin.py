"""The concsim pytest plugin: concurrency tests that explore schedules and replay failures.

Registered through the ``pytest11`` entry point, so installing concsim enables it.

Two ways in:

* the marker turns a test into an exploration of a registered scenario, run before the
  test's body (which may check more)::

      @pytest.mark.concsim("counter", variant="racy", schedules=200, expect="assertion")
      def test_racy_counter_loses_updates(): ...

* the ``concsim_explore`` fixture explores a world the test builds itself with concsim's
  primitives (see :func:`concsim.check`), the way to test a race that is no scenario::

      def test_two_increments(concsim_explore):
          def build(rt): ...
          concsim_explore(build, schedules=200)

  A ``concsim`` marker without a scenario sets the fixture's defaults for the test.  In an
  async test (pytest-trio, anyio) ``await concsim_explore.check_async(build)`` yields to the
  host loop between schedules.

Options: ``--concsim-seed N`` (schedule ``i`` of each exploration uses seed ``N + i``;
default each test's own, 0), ``--concsim-schedules N`` (overrides every test's count, for a
longer run), ``--concsim-replay FILE`` (run exactly the schedule saved in FILE instead of
exploring; tests the file is not for are skipped), ``--concsim-trace VIEW`` (on a failure,
also write its ``text``, ``perfetto`` or ``mermaid`` trace view beside the replay file).

On a failure the test fails with the failure, the trace's last steps, the schedule (where a
shrinker will shrink it, see :func:`concsim._check.shrink_failure`), and the command that
replays it.  The replay file goes to pytest's cache (``.pytest_cache/d/concsim/``).  Ad-hoc
worlds replay with ``pytest NODE --concsim-replay FILE`` (their model lives in the test);
scenarios also with ``concsim replay FILE``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from concsim._check import AdhocRunResult, Build, Checking, CheckResult, check, checking
from concsim._db import FailureDB, db_root, node_key
from concsim._errors import ConcsimError
from concsim.artifacts import (
    VIEWS,
    ReplayFile,
    atomic_write_text,
    load_replay,
    render_view,
    replay_from_result,
    save_replay,
)
from concsim.runs import config_of_replay

_MARKER_DOC = (
    "concsim(scenario=None, *, variant=None, schedules=100, strategy='random', params=None, "
    "seed=0, max_steps=None, depth=3, k=None, preemption_bound=None, reduction=True, "
    "expect=None): explore a registered scenario before the test "
    "body (without a scenario: defaults for the concsim_explore fixture); expect='any' or a "
    "failure kind makes finding that failure the passing outcome"
)
_SETTING_KEYS = (
    "schedules",
    "seed",
    "strategy",
    "variant",
    "params",
    "max_steps",
    "depth",
    "k",
    "preemption_bound",
    "reduction",
)
_MARKER_KEYS = frozenset({"scenario", "expect", *_SETTING_KEYS})


@dataclass(frozen=True)
class _Settings:
    seed: int | None
    schedules: int | None
    replay: ReplayFile | None
    replay_path: str | None
    trace_view: str | None
    db_dir: str | None = None


_SETTINGS = pytest.StashKey[_Settings]()
_DB_NOTES = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("concsim", "concsim: deterministic concurrency exploration")
    group.addoption(
        "--concsim-seed",
        type=int,
        default=None,
        metavar="N",
        help="base seed of every exploration (schedule i uses seed N+i)",
    )
    group.addoption(
        "--concsim-schedules",
        type=int,
        default=None,
        metavar="N",
        help="schedules per exploration, overriding the tests' own counts",
    )
    group.addoption(
        "--concsim-trace",
        choices=VIEWS,
        default=None,
        help="on a failure, also write the trace in this view beside the replay file "
        "(the way to get a Perfetto or mermaid view of an ad-hoc world's failure)",
    )
    group.addoption(
        "--concsim-db",
        default=None,
        metavar="DIR",
        help="the failure database: each test's saved failures are replayed before it "
        "explores, new ones are saved [default: $CONCSIM_DB, else .concsim; 'off' skips]",
    )
    group.addoption(
        "--concsim-replay",
        default=None,
        metavar="FILE",
        help="run exactly the schedule saved in this replay file (other concsim tests skip)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_DOC)
    schedules = config.getoption("concsim_schedules")
    if schedules is not None and schedules < 1:
        raise pytest.UsageError("--concsim-schedules must be at least 1")
    path = config.getoption("concsim_replay")
    rf = None
    if path is not None:
        try:
            rf = load_replay(path)
        except ConcsimError as e:
            raise pytest.UsageError(f"--concsim-replay: {e}") from None
    config.stash[_SETTINGS] = _Settings(
        config.getoption("concsim_seed"),
        schedules,
        rf,
        path,
        config.getoption("concsim_trace"),
        config.getoption("concsim_db"),
    )
    config.stash[_DB_NOTES] = []


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    notes = config.stash.get(_DB_NOTES, [])
    if notes:
        terminalreporter.section("concsim failure database")
        for note in notes:
            terminalreporter.write_line(note)


def pytest_report_header(config: pytest.Config) -> str | None:
    s = config.stash.get(_SETTINGS, None)
    if s is None:
        return None
    parts = [f"seed {'per test' if s.seed is None else s.seed}"]
    if s.schedules is not None:
        parts.append(f"schedules {s.schedules}")
    if s.replay_path is not None:
        parts.append(f"replaying {s.replay_path}")
    return "concsim: " + ", ".join(parts)


def _marker_kwargs(item: pytest.Item) -> dict[str, Any]:
    marker = item.get_closest_marker("concsim")
    if marker is None:
        return {}
    kw = dict(marker.kwargs)
    if marker.args:
        if len(marker.args) > 1 or "scenario" in kw:
            raise pytest.UsageError(f"{item.nodeid}: concsim marker takes one scenario name")
        kw["scenario"] = marker.args[0]
    unknown = set(kw) - _MARKER_KEYS
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: unknown concsim marker argument(s) {sorted(unknown)} "
            f"(known: {', '.join(sorted(_MARKER_KEYS))})"
        )
    return kw


class ConcsimFailed(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """The test failed because concsim found a failure (``pytest.fail`` with a marker type,
    so the report can be unwrapped from an async framework's exception group)."""

    __module__ = "builtins"  # the report says "ConcsimFailed: ...", as pytest's "Failed: ..."


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under pytest-trio (and anyio task groups) a failure raised in the test arrives wrapped
    in an ``ExceptionGroup``: report concsim's failure alone, as one clean pytest failure
    whose ``-ra`` line carries the failure message."""
    rep = yield
    exc = call.excinfo.value if call.excinfo is not None else None
    if rep.failed and isinstance(exc, BaseExceptionGroup):
        leaves = _leaves(exc)
        if leaves and all(isinstance(e, ConcsimFailed) for e in leaves):
            rep.longrepr = item.repr_failure(pytest.ExceptionInfo.from_exception(leaves[0]))
    return rep


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> object:
    kw = _marker_kwargs(pyfuncitem)
    if kw.get("scenario") is not None:
        _Exploration(pyfuncitem, 0, kw).run_sync(kw.pop("scenario"), {})
    return (yield)


class _Exploration:
    """One exploration inside one test: settings, replay selection, failure reporting."""

    def __init__(self, item: pytest.Item, call: int, defaults: Mapping[str, Any]) -> None:
        self.item = item
        self.call = call
        self.defaults = defaults
        self.settings = item.config.stash[_SETTINGS]
        #: the failure database's file this exploration replayed (and failed on)
        self._from_db: str | None = None

    def _options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        for k in (*_SETTING_KEYS, "expect", "name"):
            if self.defaults.get(k) is not None:
                opts[k] = self.defaults[k]
            if given.get(k) is not None:
                opts[k] = given[k]
        if self.settings.schedules is not None:
            opts["schedules"] = self.settings.schedules
        if self.settings.seed is not None:
            opts["seed"] = self.settings.seed
        return opts

    def _replay(self, target: str | Build) -> ReplayFile | None:
        """The replay file if it is for this exploration; skip tests it is not for."""
        rf = self.settings.replay
        if rf is None:
            return None
        nodeid = rf.extra.get("pytest_nodeid")
        if nodeid is None:
            if isinstance(target, str) and rf.scenario == target:
                return rf
            pytest.skip(
                f"--concsim-replay {self.settings.replay_path} is for scenario {rf.scenario!r}"
            )
        if nodeid != self.item.nodeid:
            pytest.skip(f"--concsim-replay {self.settings.replay_path} is for {nodeid}")
        return rf if rf.extra.get("call", 0) == self.call else None

    def _begin(
        self, target: str | Build, given: Mapping[str, Any]
    ) -> tuple[Checking | CheckResult, str | None, bool]:
        """What to run (a check to step, or a replay's result), what to expect, and
        whether it is a replay: the part the sync and async runners share."""
        opts = self._options(given)
        expect = opts.pop("expect", None)
        rf = self._replay(target)
        if rf is not None:
            return self._run_replay(target, rf, opts), expect, True
        saved = self._saved_failure(target, opts)  # the failure database first
        if saved is not None:
            self._from_db = saved[1]
            return saved[0], expect, True
        return checking(target, **opts), expect, False

    def run_sync(self, target: str | Build, given: Mapping[str, Any]) -> CheckResult:
        try:
            job, expect, replayed = self._begin(target, given)
            if isinstance(job, Checking):
                while job.step():
                    pass
                assert job.result is not None
                job = job.result
        except ConcsimError as e:
            error = e
        else:
            return self._judge(job, expect, replayed=replayed, from_db=self._from_db)
        pytest.fail(f"concsim: {error}", pytrace=False)

    async def run_async(self, target: str | Build, given: Mapping[str, Any]) -> CheckResult:
        import anyio.lowlevel

        try:
            job, expect, replayed = self._begin(target, given)
            if isinstance(job, Checking):
                while True:
                    await anyio.lowlevel.checkpoint()
                    if not job.step():
                        break
                assert job.result is not None
                job = job.result
        except ConcsimError as e:
            error = e
        else:
            return self._judge(job, expect, replayed=replayed, from_db=self._from_db)
        pytest.fail(f"concsim: {error}", pytrace=False)

    def _db(self) -> FailureDB | None:
        root = db_root(self.settings.db_dir)
        return FailureDB(root) if root is not None else None

    def _note(self, text: str) -> None:
        self.item.config.stash[_DB_NOTES].append(text)

    def _saved_failure(
        self, target: str | Build, opts: Mapping[str, Any]
    ) -> tuple[CheckResult, str] | None:
        """Replay this test's saved failures (the failure database) before exploring: the
        first that still fails is the test's failure; those that pass are fixed, and
        forgotten."""
        db = self._db()
        if db is None:
            return None
        for entry in db.entries(node_key(self.item.nodeid, self.call)):
            try:
                res = self._run_replay(target, load_replay(entry.path), opts)
            except ConcsimError as e:
                db.remove(entry)
                self._note(f"{self.item.nodeid}: dropped {entry.path} (no longer replays: {e})")
                continue
            if res.failing is None:
                db.remove(entry)
                self._note(f"{self.item.nodeid}: fixed: {entry.signature} ({entry.path})")
                continue
            return res, str(entry.path)
        return None

    @staticmethod
    def _run_replay(target: str | Build, rf: ReplayFile, opts: Mapping[str, Any]) -> CheckResult:
        if isinstance(target, str):
            cfg = config_of_replay(rf)
            return check(rf.scenario, config=cfg.replace(schedule=None), schedule=rf.schedule)
        saved = rf.config or {}
        max_steps = saved.get("max_steps", opts.get("max_steps"))
        return check(target, schedule=rf.schedule, max_steps=max_steps, name=opts.get("name"))

    def _judge(
        self, res: CheckResult, expect: str | None, *, replayed: bool, from_db: str | None = None
    ) -> CheckResult:
        if res.failing is None:
            if expect is not None and not replayed:
                pytest.fail(
                    f"concsim: expected {'a failure' if expect == 'any' else 'a ' + expect} "
                    f"in {res.schedules} schedules of {res.target} (seed {res.seed}), "
                    "found none",
                    pytrace=False,
                )
            return res
        assert res.failing.failure is not None
        if expect is not None and expect in ("any", res.failing.failure.kind):
            return res
        extra = self._save(res, from_db)
        f = res.failing.failure
        inv = f" [{f.invariant}]" if f.invariant else ""
        # The first line is what ``pytest -ra`` shows: the failure itself.
        head = f"{f.kind}{inv}: {' '.join(f.message.split())}"
        if expect is not None:
            head = f"expected a {expect} failure, found {head}"
        if from_db is not None:
            head += " (a saved failure, replayed first from the failure database)"
        raise ConcsimFailed(f"{head}\n{res.report()}{extra}", pytrace=False)

    def _save(self, res: CheckResult, from_db: str | None = None) -> str:
        """Save the failing schedule in pytest's cache; set its replay command.

        Returns what the report should add (the pytest command for a scenario, whose
        :meth:`RunResult.replay_command` is ``concsim replay FILE``).
        """
        failing = res.failing
        assert failing is not None
        assert failing.failure is not None
        cache = getattr(self.item.config, "cache", None)
        adhoc = isinstance(failing, AdhocRunResult)
        db = self._db() if from_db is None else None
        if db is not None:
            saved = replay_from_result(failing, original=res.original_schedule)
            saved.extra.update(
                {"pytest_nodeid": self.item.nodeid, "call": self.call, "adhoc": adhoc}
            )
            try:
                db.save(node_key(self.item.nodeid, self.call), saved, failing.failure.signature)
            except ConcsimError as e:
                self._note(f"{self.item.nodeid}: not saved in the failure database: {e}")
        if cache is None:
            if isinstance(failing, AdhocRunResult):
                failing.command = "(none: no replay file, pytest's cacheprovider is disabled)"
            return ""
        rf = replay_from_result(failing, original=res.original_schedule)
        rf.extra.update({"pytest_nodeid": self.item.nodeid, "call": self.call, "adhoc": adhoc})
        name = _file_name(self.item.nodeid, self.call, failing.failure.kind)
        path = Path(cache.mkdir("concsim")) / name
        save_replay(path, rf)
        failing.replay_file = str(path)
        extra = ""
        view = self.settings.trace_view
        if view is not None:
            suffix = {"text": ".trace.txt", "perfetto": ".perfetto.json", "mermaid": ".mmd"}
            view_path = path.with_name(path.stem + suffix[view])
            atomic_write_text(
                view_path,
                render_view(
                    view,
                    failing.trace,
                    failing.failure,
                    title=f"concsim {self.item.nodeid}",
                    metadata={"schedule": failing.schedule, "replay_file": str(path)},
                ),
            )
            extra += f"\n{view} trace: {view_path}"
        command = (
            f"pytest {shlex.quote(self._node_arg())} --concsim-replay {shlex.quote(str(path))}"
        )
        if isinstance(failing, AdhocRunResult):
            failing.command = command
            return extra
        return f"\n        or: {command}{extra}"

    def _node_arg(self) -> str:
        """The test's node id, with its file relative to where pytest was invoked."""
        file_part, sep, rest = self.item.nodeid.partition("::")
        config = self.item.config
        rel = os.path.relpath(config.rootpath / file_part, config.invocation_params.dir)
        return rel + sep + rest


def _file_name(nodeid: str, call: int, kind: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
    if len(stem) > 120:
        stem = stem[:100] + "-" + hashlib.sha256(nodeid.encode()).hexdigest()[:12]
    return f"{stem}{'-' + str(call) if call else ''}-{kind}.json"


class ConcsimExplorer:
    """The ``concsim_explore`` fixture: ``concsim_explore(build_or_scenario, **options)``.

    Options (each overrides the test's ``concsim`` marker; ``--concsim-schedules`` and
    ``--concsim-seed`` override both): ``schedules``, ``seed``, ``strategy``, ``max_steps``,
    ``name``, ``expect`` (``"any"`` or a failure kind: finding it is the passing outcome),
    and ``variant``/``params`` for a scenario.  Returns the :class:`concsim.CheckResult`.
    """

    def __init__(self, item: pytest.Item) -> None:
        self._item = item
        self._calls = 0

    def _next(self) -> _Exploration:
        exp = _Exploration(self._item, self._calls, _marker_kwargs(self._item))
        self._calls += 1
        return exp

    def __call__(self, target: str | Build, **options: Any) -> CheckResult:
        return self._next().run_sync(target, options)

    async def check_async(self, target: str | Build, **options: Any) -> CheckResult:
        return await self._next().run_async(target, options)


@pytest.fixture
def concsim_explore(request: pytest.FixtureRequest) -> ConcsimExplorer:
    """Explore a world the test builds (``build(rt)``) or a scenario; fail on a failure."""
    return ConcsimExplorer(request.node)
