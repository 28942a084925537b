"""Exercises: "your turn" cells, and checkers that say what is wrong.

In a notebook, the learner's part of a cell sits between two marker lines:

    def softmax(scores):
        # BEGIN SOLUTION
        exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return exps / exps.sum(axis=-1, keepdims=True)
        # END SOLUTION

    check_softmax(softmax)          # in the next cell

The committed notebooks hold the solutions. `python3 tasks.py learner` writes
learner copies in which each marked part is replaced by a stub that stands in
the reference (fer_helpers.exercises.references) for the learner's code:

    def softmax(scores):
        return NotDoneYet.use_reference('softmax', locals())  # your code here

So a learner's Run All reaches the end with every exercise still open: the
first time a stub runs it prints one loud line, "⚠ softmax: not done yet —
using the reference so the rest of the notebook runs; come back to it", and
later cells run on the reference. Once the learner replaces the stub line, their
own code runs and is checked.

Checkers (one module per notebook: softmax, dimensions, evaluation, ...) call
the learner's code on several cases, compare with a reference, and raise
ExerciseError with a sentence that says what to fix. Each is wrapped in
@checker: a checker whose code under test is still a stub reports "not done
yet" with the loud line instead of "OK" (see `passed`), and does not stop the
notebook.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any, TypeVar

import numpy as np

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"


class NotDoneYet(Exception):
    """An exercise the learner has not written yet."""

    def __init__(self, what: str = "this exercise") -> None:
        super().__init__(
            f"{what} is not done yet: write your code where the stub is, then run the cell again"
        )

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"NOT DONE YET: {self}"]

    @staticmethod
    def use_reference(what: str, arguments: Mapping[str, Any]) -> Any:
        """A learner copy's stub: run the reference of exercise `what` in place of the learner's.

        `arguments` is the stubbed function's locals() (its parameters, by name).
        Says so loudly, once per exercise; inside a checker the checker reports
        it instead (see `passed`). Without a reference, raises NotDoneYet as
        before.
        """
        from .references import REFERENCES

        reference = REFERENCES.get(what)
        if reference is None:
            raise NotDoneYet(what)
        if _CHECKING:  # the stubbed function's code: is it the one under test?
            _CHECKING[-1].used.append((what, sys._getframe(1).f_code))
        elif what not in ANNOUNCED:
            announce(what)
        parameters = inspect.signature(reference).parameters
        missing = [
            name
            for name, p in parameters.items()
            if name not in arguments and p.default is inspect.Parameter.empty
        ]
        if missing:
            raise TypeError(
                f"the reference of {what!r} takes ({', '.join(parameters)}), but the exercise's "
                f"function has no {', '.join(missing)}: rename the parameters to match"
            )
        return reference(**{name: arguments[name] for name in parameters if name in arguments})


ANNOUNCED: set[str] = set()
"""The exercises whose reference a stub has stood in for, and said so, in this kernel."""


def announce(what: str) -> None:
    """The one loud line: exercise `what` is a stub, and its reference stands in."""
    ANNOUNCED.add(what)
    print(
        f"\u26a0 {what}: not done yet \u2014 using the reference so the rest of the notebook "
        "runs; come back to it",
        file=sys.stderr,
        flush=True,
    )


class _Check:
    """What one running checker saw: the code under test and the stubs it reached."""

    def __init__(self, subject: Any) -> None:
        self.codes = _codes_of(subject)
        self.used: list[tuple[str, CodeType]] = []


_CHECKING: list[_Check] = []


def _codes_of(subject: Any) -> set[CodeType]:
    """The code objects of a function, or of every method of a class (its own and its bases')."""
    if inspect.isclass(subject):
        functions = [
            f
            for klass in subject.__mro__
            if klass is not object and not klass.__module__.startswith("torch.")
            for f in vars(klass).values()
        ]
    else:
        functions = [subject]
    return {
        f.__code__
        for f in (inspect.unwrap(f) for f in functions if callable(f))
        if hasattr(f, "__code__")
    }


Check = TypeVar("Check", bound=Callable[..., None])


def checker(check: Check) -> Check:
    """Mark a checker: stubs it reaches are reported by `passed`, not run silently."""

    @functools.wraps(check)
    def checking(*args: Any, **kwargs: Any) -> None:
        subject = args[0] if args else next(iter(kwargs.values()), None)  # the code under test
        _CHECKING.append(_Check(subject))
        try:
            check(*args, **kwargs)
        finally:
            _CHECKING.pop()

    return checking  # type: ignore[return-value]


class ExerciseError(AssertionError):
    """The learner's answer is wrong; the message says how."""

    def _render_traceback_(self) -> list[str]:
        return [f"NOT YET RIGHT: {self}"]


def call(function: Callable, *args: Any, name: str | None = None) -> Any:
    """Call the learner's function; a stub or a forgotten `return` becomes a clear message."""
    name = name or getattr(function, "__name__", "your function")
    result = function(*args)  # NotDoneYet passes through as it is
    if result is None:
        raise ExerciseError(f"{name} returned None: did you forget `return`?")
    return result


def expect_close(got: Any, expected: Any, what: str, atol: float = 1e-6) -> None:
    """Raise ExerciseError unless `got` matches `expected` in shape and value."""
    got_array = np.asarray(got.detach().cpu() if hasattr(got, "detach") else got, dtype=float)
    expected_array = np.asarray(expected, dtype=float)
    if got_array.shape != expected_array.shape:
        raise ExerciseError(f"{what}: expected shape {expected_array.shape}, got {got_array.shape}")
    if np.isnan(got_array).any() and not np.isnan(expected_array).any():
        raise ExerciseError(f"{what}: your result contains nan")
    if not np.allclose(got_array, expected_array, atol=atol, rtol=1e-5):
        raise ExerciseError(
            f"{what}: expected {np.round(expected_array, 4).tolist()}, "
            f"got {np.round(got_array, 4).tolist()}"
        )


def passed(name: str, checks: int) -> None:
    """Tell the learner it worked, or, where the code under test is still a stub, that it is not
    done yet.

    A stub of another exercise that the learner's code uses (their cross_entropy
    calls their one_hot) does not hide the OK: the loud line for it follows.
    """
    check = _CHECKING[-1] if _CHECKING else None
    used = check.used if check else []
    own = [what for what, code in used if code in check.codes] if check else []
    if not own:
        print(f"OK: {name} passed all {checks} checks")
    for what in dict.fromkeys(what for what, _ in used):  # each once, in order
        announce(what)
