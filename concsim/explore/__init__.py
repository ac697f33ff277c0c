"""Exploration: many schedules of a target under random, PCT or exhaustive search,
shrinking of failing schedules, coverage, and the exploration benchmark."""

from concsim.explore._coverage import Coverage as Coverage
from concsim.explore._explorer import STRATEGIES as STRATEGIES
from concsim.explore._explorer import Exploration as Exploration
from concsim.explore._explorer import ExploreResult as ExploreResult
from concsim.explore._explorer import FirstFailure as FirstFailure
from concsim.explore._explorer import explore as explore
from concsim.explore._explorer import explore_async as explore_async
from concsim.explore._explorer import make_target as make_target
from concsim.explore._runner import Execution as Execution
from concsim.explore._runner import Target as Target
from concsim.explore._runner import execute as execute
from concsim.explore._shrink import Attempt as Attempt
from concsim.explore._shrink import ShrinkResult as ShrinkResult
from concsim.explore._shrink import shrink as shrink
