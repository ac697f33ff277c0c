"""Exploration: many schedules of a target under random, PCT or exhaustive search,
shrinking of failing schedules, coverage, and the exploration benchmark."""

from concsim.exploration._coverage import Coverage as Coverage
from concsim.exploration._explorer import STRATEGIES as STRATEGIES
from concsim.exploration._explorer import Exploration as Exploration
from concsim.exploration._explorer import ExploreResult as ExploreResult
from concsim.exploration._explorer import FirstFailure as FirstFailure
from concsim.exploration._explorer import explore as explore
from concsim.exploration._explorer import explore_async as explore_async
from concsim.exploration._minimize import Shrunk as Shrunk
from concsim.exploration._minimize import ShrunkFile as ShrunkFile
from concsim.exploration._minimize import shrink_on_target as shrink_on_target
from concsim.exploration._minimize import shrink_replay_file as shrink_replay_file
from concsim.exploration._runner import Execution as Execution
from concsim.exploration._runner import Target as Target
from concsim.exploration._runner import execute as execute
from concsim.exploration._runner import make_target as make_target
from concsim.exploration._shrink import Attempt as Attempt
from concsim.exploration._shrink import ShrinkResult as ShrinkResult
from concsim.exploration._shrink import shrink as shrink
