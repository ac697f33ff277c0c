"""Models of the Linux and Hyper-V pieces the driver relies on.

Locking and scheduling primitives live here (one per private module); the memory-management
models (address space, page allocator, interval notifiers, HMM, SLAT) join them.
"""

from concsim.kernel._mutex import Mutex as Mutex
from concsim.kernel._rwsem import RWSem as RWSem
from concsim.kernel._sched import cond_resched as cond_resched
from concsim.kernel._sched import might_sleep as might_sleep
from concsim.kernel._sched import nonblock_context as nonblock_context
from concsim.kernel._spinlock import SpinLock as SpinLock
from concsim.kernel._waitqueue import Completion as Completion
from concsim.kernel._waitqueue import WaitQueue as WaitQueue
