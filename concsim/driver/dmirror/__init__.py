"""The dmirror driver model (lib/test_hmm.c): a second HMM driver on the same kernel model.

``VARIANTS`` maps ``--variant`` names to driver classes: the correct ``dmirror`` and the
mutants of :mod:`concsim.driver.dmirror._mutants`.
"""

from concsim.driver.dmirror._mutants import MUTANTS as MUTANTS
from concsim.driver.dmirror._test_hmm import Dmirror as Dmirror
from concsim.driver.dmirror._test_hmm import DmirrorDriver as DmirrorDriver
from concsim.driver.dmirror._test_hmm import HmmDmirrorCmd as HmmDmirrorCmd

CORRECT_VARIANTS: dict[str, type[DmirrorDriver]] = {DmirrorDriver.name: DmirrorDriver}
VARIANTS: dict[str, type[DmirrorDriver]] = {**CORRECT_VARIANTS, **MUTANTS}
