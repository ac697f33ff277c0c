"""The errors concsim raises at its users.

Two families, kept apart on purpose:

* ``ConcsimError`` and its subclasses are *user errors*: a bad argument, an unknown scenario,
  a malformed replay file, a schedule that does not fit the model.  Each inherits the builtin
  it resembles (as Hypothesis's ``InvalidArgument`` is a ``TypeError``), carries a one-line
  message that says which rule was broken and what to do, and makes the CLI exit with 2.
* A *failure* found in the model (a deadlock, a broken invariant) is not an exception at
  all at the API level: it is a :class:`concsim.Failure` value in the run result.
"""

from __future__ import annotations


class ConcsimError(Exception):
    """Base class of every error concsim raises for bad input."""


class UsageError(ConcsimError, ValueError):
    """A bad argument: an unknown name, a value out of range, a malformed option."""


class ReplayFileError(UsageError):
    """A replay file that cannot be read: malformed JSON, a wrong version, missing fields."""


class ScheduleMismatch(UsageError):
    """A recorded schedule that does not fit the model it is replayed against.

    Raised with the step number at which the model and the schedule part ways: a choice that
    names an option the model does not offer there, a schedule that runs out before the run
    ends, or one that has choices left over when it ends.
    """

    def __init__(self, step: int, message: str) -> None:
        super().__init__(f"schedule does not fit the model at step {step}: {message}")
        self.step = step


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C that a front end turned into an exception on purpose (its second press).

    A plain ``KeyboardInterrupt`` raised by a model's own code (a user variant's method) is a
    failure of that model; this one is the user stopping concsim, so the engine lets it pass.
    """
