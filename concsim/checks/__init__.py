"""Oracles: safety invariants, liveness bounds, lock discipline, assertion points."""

from concsim.checks._dmirror import DmirrorOracles as DmirrorOracles
from concsim.checks._lockdep import LockDep as LockDep
from concsim.checks._oracles import MshvOracles as MshvOracles
