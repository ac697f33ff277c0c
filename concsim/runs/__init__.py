"""The run core: one schedule of a scenario and variant, below every front end.

Every front end (``concsim run``/``explore``/``stress``/..., :func:`concsim.check`, the
pytest plugin) builds its runs here, so a seed names the same schedule everywhere.
"""

from concsim.runs._core import STRATEGIES as STRATEGIES
from concsim.runs._core import make_strategy as make_strategy
from concsim.runs._core import run_world as run_world
from concsim.runs._result import RunResult as RunResult
from concsim.runs._result import result_of as result_of
from concsim.runs._variants import replay_variant as replay_variant
from concsim.runs._variants import resolve_variant as resolve_variant
