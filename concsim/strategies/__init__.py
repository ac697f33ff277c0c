"""Exploration strategies: each one file behind the :class:`concsim.engine.Strategy` protocol.

``_steps`` is not a strategy: it derives what each step touched (for partial-order
reduction and coverage) from the trace and a step hook.
"""

from concsim.strategies._dfs import DfsRun as DfsRun
from concsim.strategies._dfs import DfsSearch as DfsSearch
from concsim.strategies._dfs import Diverged as Diverged
from concsim.strategies._dfs import Pruned as Pruned
from concsim.strategies._pct import PCT as PCT
from concsim.strategies._random import RandomWalk as RandomWalk
from concsim.strategies._replay import PreferTasks as PreferTasks
from concsim.strategies._replay import Replay as Replay
from concsim.strategies._steps import ALL as ALL
from concsim.strategies._steps import Access as Access
from concsim.strategies._steps import StepObserver as StepObserver
from concsim.strategies._steps import StepRecord as StepRecord
from concsim.strategies._steps import dependent as dependent
