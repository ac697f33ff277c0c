"""Models of the Linux and Hyper-V pieces the driver relies on (one per private module).

Locking and scheduling: :class:`Mutex`, :class:`RWSem`, :class:`SpinLock`,
:class:`WaitQueue`, :class:`Completion`, :func:`cond_resched`, :func:`might_sleep`,
:func:`nonblock_context`.  Memory management: :class:`PageAllocator`, :class:`MM` and its
VMAs and page table, interval notifiers (``mmu_notifier``), :func:`hmm_range_fault`, the
primary-MMU events (``mm_events``), the hypervisor's :class:`SLAT` and
:class:`Hypervisor` hypercalls, and the :class:`KernelAllocator` (kmalloc/vmalloc).
"""

from concsim.kernel import _tracepoints as _tracepoints  # declares the trace records
from concsim.kernel._alloc import KMALLOC_MAX_SIZE as KMALLOC_MAX_SIZE
from concsim.kernel._alloc import KernelAllocator as KernelAllocator
from concsim.kernel._hmm import HMMRange as HMMRange
from concsim.kernel._hmm import hmm_range_fault as hmm_range_fault
from concsim.kernel._hv import SLAT as SLAT
from concsim.kernel._hv import Hypervisor as Hypervisor
from concsim.kernel._lockbase import LockdepMap as LockdepMap
from concsim.kernel._mm import MM as MM
from concsim.kernel._mm import VMA as VMA
from concsim.kernel._mmu_notifier import MMUIntervalNotifier as MMUIntervalNotifier
from concsim.kernel._mmu_notifier import MMUNotifierRange as MMUNotifierRange
from concsim.kernel._mmu_notifier import (
    mmu_interval_notifier_insert as mmu_interval_notifier_insert,
)
from concsim.kernel._mmu_notifier import (
    mmu_interval_notifier_remove as mmu_interval_notifier_remove,
)
from concsim.kernel._mmu_notifier import mmu_interval_read_begin as mmu_interval_read_begin
from concsim.kernel._mmu_notifier import mmu_interval_read_retry as mmu_interval_read_retry
from concsim.kernel._mutex import Mutex as Mutex
from concsim.kernel._pagealloc import PageAllocator as PageAllocator
from concsim.kernel._rwsem import RWSem as RWSem
from concsim.kernel._sched import cond_resched as cond_resched
from concsim.kernel._sched import might_sleep as might_sleep
from concsim.kernel._sched import nonblock_context as nonblock_context
from concsim.kernel._spinlock import SpinLock as SpinLock
from concsim.kernel._waitqueue import Completion as Completion
from concsim.kernel._waitqueue import WaitQueue as WaitQueue
