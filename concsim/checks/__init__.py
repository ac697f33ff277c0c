"""Oracles: safety invariants, functional results, liveness bounds, lock discipline,
assertion points; and the invariant catalogue (``_catalogue``: every rule a failure can
name, its meaning and its explainer)."""

from concsim.checks._catalogue import Invariant as Invariant
from concsim.checks._catalogue import invariant as invariant
from concsim.checks._catalogue import invariants as invariants
from concsim.checks._catalogue import register_invariant as register_invariant
from concsim.checks._dmirror import MIRRORS_OBJ as MIRRORS_OBJ
from concsim.checks._dmirror import DmirrorOracles as DmirrorOracles
from concsim.checks._functional import FunctionalOracles as FunctionalOracles
from concsim.checks._lockdep import LockDep as LockDep
from concsim.checks._oracles import MshvOracles as MshvOracles
