"""Exercises: "your turn" cells, and checkers that say what is wrong.

In a notebook, the learner's part of a cell sits between two marker lines:

    def softmax(scores):
        # BEGIN SOLUTION
        exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return exps / exps.sum(axis=-1, keepdims=True)
        # END SOLUTION

    check_softmax(softmax)          # in the next cell

The committed notebooks hold the solutions. `python3 tasks.py learner` writes
learner copies in which each marked part is replaced by
`raise NotDoneYet(...)`, so a learner's Run All stops at the first exercise
with one clear line instead of a traceback.

Checkers (one module per notebook: softmax, dimensions, evaluation, ...) call
the learner's code on several cases, compare with a reference, and raise
ExerciseError with a sentence that says what to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    """Tell the learner it worked."""
    print(f"OK: {name} passed all {checks} checks")
