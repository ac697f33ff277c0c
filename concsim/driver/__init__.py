"""The mshv driver model (drivers/hv/mshv_regions.c and mshv_root_main.c) and its variants."""

from concsim.driver import _tracepoints as _tracepoints  # declares the trace records
from concsim.driver._driver import KERNEL_FUNCTIONS as KERNEL_FUNCTIONS
from concsim.driver._driver import MshvDriverBase as MshvDriverBase
from concsim.driver._variants import CORRECT_VARIANTS as CORRECT_VARIANTS
from concsim.driver._variants import V3 as V3
from concsim.driver._variants import AfterPatch as AfterPatch
from concsim.driver._variants import BeforePatch as BeforePatch
from concsim.driver._variants import Stateless as Stateless

VARIANTS: dict[str, type[MshvDriverBase]] = dict(CORRECT_VARIANTS)

from concsim.driver._loader import load_variant as load_variant  # noqa: E402
from concsim.driver._mutants import MUTANTS as MUTANTS  # noqa: E402
from concsim.driver._patching import patched as patched  # noqa: E402

VARIANTS.update(MUTANTS)
