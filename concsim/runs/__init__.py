"""The run core: one schedule of a scenario and variant, below every front end.

Every front end (``concsim run``/``explore``/``stress``/..., :func:`concsim.check`, the
pytest plugin) builds a :class:`RunConfig` and runs it here, so a seed names the same
schedule everywhere and a replay file holds the whole configuration.
"""

from concsim.runs._config import STRATEGIES as STRATEGIES
from concsim.runs._config import RunConfig as RunConfig
from concsim.runs._core import Execution as Execution
from concsim.runs._core import Runs as Runs
from concsim.runs._core import World as World
from concsim.runs._core import execute as execute
from concsim.runs._core import make_strategy as make_strategy
from concsim.runs._core import planner_for as planner_for
from concsim.runs._core import resolve as resolve
from concsim.runs._core import run_config as run_config
from concsim.runs._core import run_fast as run_fast
from concsim.runs._core import run_world as run_world
from concsim.runs._core import world_of as world_of
from concsim.runs._result import RunResult as RunResult
from concsim.runs._result import result_of as result_of
from concsim.runs._variants import config_of_replay as config_of_replay
from concsim.runs._variants import replay_variant as replay_variant
from concsim.runs._variants import resolve_variant as resolve_variant
