"""Named, parameterised scenarios (workloads) and their registry."""

from concsim.scenarios._registry import Param as Param
from concsim.scenarios._registry import Scenario as Scenario
from concsim.scenarios._registry import all_scenarios as all_scenarios
from concsim.scenarios._registry import get_scenario as get_scenario
from concsim.scenarios._registry import parse_param_args as parse_param_args
from concsim.scenarios._registry import register as register
