"""Exploration strategies: each one file behind the :class:`concsim.engine.Strategy` protocol."""

from concsim.strategies._random import RandomWalk as RandomWalk
from concsim.strategies._replay import Replay as Replay
