"""concsim: a deterministic concurrency simulator for Linux memory-management races.

The public surface is re-exported here; every other module is private (leading
underscore) or a layer package (engine, kernel, driver, checks, scenarios, strategies,
exploration, artifacts, cli) with its own thin namespace.
"""

from concsim._api import DEFAULT_SCENARIO as DEFAULT_SCENARIO
from concsim._api import ReplayOutcome as ReplayOutcome
from concsim._api import replay as replay
from concsim._api import run as run
from concsim._api import run_async as run_async
from concsim._api import save_failure as save_failure
from concsim._check import CheckResult as CheckResult
from concsim._check import check as check
from concsim._check import check_async as check_async
from concsim._compare import Comparison as Comparison
from concsim._compare import compare as compare
from concsim._errors import ConcsimError as ConcsimError
from concsim._errors import ReplayFileError as ReplayFileError
from concsim._errors import ScheduleMismatch as ScheduleMismatch
from concsim._errors import UsageError as UsageError
from concsim._version import __version__ as __version__
from concsim.engine import Failure as Failure
from concsim.engine import Runtime as Runtime
from concsim.engine import decode_schedule as decode_schedule
from concsim.engine import encode_schedule as encode_schedule
from concsim.exploration import ExploreResult as ExploreResult
from concsim.exploration import explore as explore
from concsim.exploration import explore_async as explore_async
from concsim.runs import RunResult as RunResult

__all__ = [
    "DEFAULT_SCENARIO",
    "CheckResult",
    "Comparison",
    "ConcsimError",
    "ExploreResult",
    "Failure",
    "ReplayFileError",
    "ReplayOutcome",
    "RunResult",
    "Runtime",
    "ScheduleMismatch",
    "UsageError",
    "__version__",
    "check",
    "check_async",
    "compare",
    "decode_schedule",
    "encode_schedule",
    "explore",
    "explore_async",
    "replay",
    "run",
    "run_async",
    "save_failure",
]
