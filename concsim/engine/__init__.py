"""The model-agnostic engine: tasks, scheduling points, choices, traces and failures.

Nothing here knows about pages, regions or hypervisors.
"""

from concsim.engine._failure import ENGINE_KINDS as ENGINE_KINDS
from concsim.engine._failure import Failure as Failure
from concsim.engine._failure import FailureSignal as FailureSignal
from concsim.engine._runtime import BLOCKED as BLOCKED
from concsim.engine._runtime import DONE as DONE
from concsim.engine._runtime import ENV_CHOICE as ENV_CHOICE
from concsim.engine._runtime import RUNNABLE as RUNNABLE
from concsim.engine._runtime import TASK_CHOICE as TASK_CHOICE
from concsim.engine._runtime import Runtime as Runtime
from concsim.engine._runtime import StepListener as StepListener
from concsim.engine._runtime import Strategy as Strategy
from concsim.engine._runtime import Task as Task
from concsim.engine._runtime import Waitable as Waitable
from concsim.engine._schedule import decode_schedule as decode_schedule
from concsim.engine._schedule import encode_schedule as encode_schedule
from concsim.engine._trace import EventKind as EventKind
from concsim.engine._trace import TraceEntry as TraceEntry
from concsim.engine._trace import define_event as define_event
from concsim.engine._trace import event_kind as event_kind
from concsim.engine._trace import event_kinds as event_kinds
from concsim.engine._trace import format_trace as format_trace
from concsim.engine._trace import render_detail as render_detail
from concsim.engine._trace import trace_sha256 as trace_sha256
