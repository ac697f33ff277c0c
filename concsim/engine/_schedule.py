"""The schedule codec: a list of choices as a short string a person can paste back.

Format ``cs1:<body>``.  Each choice is one character of ``0-9a-z`` (its value in base 36);
a value of 36 or more is written ``(<decimal>)``.  A character repeated three or more times
is written once followed by ``{<count>}``.  So ``[0]*40 + [2, 0, 1]`` is ``cs1:0{40}201``.

Examples::

    >>> encode_schedule([0, 0, 0, 0, 2, 1])
    'cs1:0{4}21'
    >>> decode_schedule('cs1:0{4}21')
    [0, 0, 0, 0, 2, 1]
"""

from __future__ import annotations

from concsim._errors import UsageError

PREFIX = "cs1:"
#: The longest schedule the codec decodes (a run never makes more choices than it has steps,
#: and no scenario runs anywhere near this many); checked before memory is spent on it.
MAX_CHOICES = 5_000_000
#: The most digits a ``(value)`` or ``{count}`` may have.
_MAX_DIGITS = 9
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _token(v: int) -> str:
    return _DIGITS[v] if v < 36 else f"({v})"


def encode_schedule(choices: list[int]) -> str:
    out = [PREFIX]
    i = 0
    n = len(choices)
    while i < n:
        v = choices[i]
        j = i + 1
        while j < n and choices[j] == v:
            j += 1
        run = j - i
        tok = _token(v)
        if run >= 3:
            out.append(f"{tok}{{{run}}}")
        else:
            out.append(tok * run)
        i = j
    return "".join(out)


def decode_schedule(text: str) -> list[int]:
    """Parse a schedule string; a malformed one is a one-line :class:`UsageError`."""
    s = text.strip()
    if not s.startswith(PREFIX):
        raise UsageError(
            f"not a concsim schedule: {text[:40]!r} (a schedule string starts with {PREFIX!r})"
        )
    body = s[len(PREFIX) :]
    if len(body) > MAX_CHOICES:
        raise UsageError(
            f"schedule string too long ({len(body):,} characters; at most {MAX_CHOICES:,} "
            "choices are decoded)"
        )
    out: list[int] = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c == "(":
            j = body.find(")", i)
            if j < 0 or not body[i + 1 : j].isdigit() or j - i - 1 > _MAX_DIGITS:
                raise UsageError(f"malformed schedule string at position {i}: bad '(...)' value")
            out.append(int(body[i + 1 : j]))
            i = j + 1
        elif c == "{":
            j = body.find("}", i)
            digits = body[i + 1 : j]
            if j < 0 or not out or not digits.isdigit():
                raise UsageError(f"malformed schedule string at position {i}: bad '{{n}}' repeat")
            count = int(digits) if len(digits) <= _MAX_DIGITS else MAX_CHOICES + 1
            if count < 1:
                raise UsageError(f"malformed schedule string at position {i}: bad '{{n}}' repeat")
            if len(out) + count - 1 > MAX_CHOICES:
                raise UsageError(
                    f"schedule string too long: it decodes to more than {MAX_CHOICES:,} choices"
                )
            out.extend([out[-1]] * (count - 1))
            i = j + 1
        else:
            v = _DIGITS.find(c)
            if v < 0:
                raise UsageError(
                    f"malformed schedule string at position {i}: unexpected character {c!r}"
                )
            out.append(v)
            i += 1
    return out
