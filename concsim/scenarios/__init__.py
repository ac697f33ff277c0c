"""Named, parameterised scenarios (workloads) and their registry."""

# The built-in scenarios register themselves on import (the registry stays below them, so
# a plug-in scenario module registers the same way: ``register(Scenario(...))``).
from concsim.scenarios import _dmirror as _dmirror
from concsim.scenarios import _examples as _examples
from concsim.scenarios import _mshv as _mshv
from concsim.scenarios._registry import Param as Param
from concsim.scenarios._registry import Scenario as Scenario
from concsim.scenarios._registry import all_scenarios as all_scenarios
from concsim.scenarios._registry import get_scenario as get_scenario
from concsim.scenarios._registry import parse_param_args as parse_param_args
from concsim.scenarios._registry import register as register
