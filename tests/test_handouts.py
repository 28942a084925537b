"""Exercises and learner copies: solutions become stubs that stop with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer_helpers.course.handouts import has_solutions, learner_notebook, stub_solutions
from fer_helpers.exercises import ExerciseError, NotDoneYet, call, expect_close

ROOT = Path(__file__).resolve().parents[1]

CELL = '''def softmax(scores):
    """Probabilities from scores."""
    # BEGIN SOLUTION softmax
    exps = np.exp(scores - scores.max())
    return exps / exps.sum()
    # END SOLUTION
x = 1'''


def test_stub_keeps_the_function_valid_and_drops_the_solution():
    stubbed = stub_solutions(CELL)
    assert "np.exp" not in stubbed and "BEGIN" not in stubbed
    assert "    raise NotDoneYet('softmax')  # your code here" in stubbed
    namespace = {"NotDoneYet": NotDoneYet, "np": np}
    exec(stubbed, namespace)  # the cell still runs: only calling the function stops
    assert namespace["x"] == 1
    with pytest.raises(NotDoneYet, match="softmax is not done yet"):
        namespace["softmax"](np.zeros(3))


def test_unbalanced_markers_are_refused():
    with pytest.raises(ValueError, match="without"):
        stub_solutions("# BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="without"):
        stub_solutions("x = 1\n# END SOLUTION")


def test_learner_notebook_clears_outputs_and_keeps_the_original():
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "source": CELL,
                "outputs": [{"x": 1}],
                "execution_count": 3,
                "metadata": {},
            },
            {"cell_type": "markdown", "source": "# BEGIN SOLUTION in prose", "metadata": {}},
        ]
    }
    copy = learner_notebook(notebook)
    assert copy["cells"][0]["outputs"] == [] and copy["cells"][0]["execution_count"] is None
    assert "np.exp" not in copy["cells"][0]["source"]
    assert copy["cells"][1]["source"] == "# BEGIN SOLUTION in prose"  # prose untouched
    assert "np.exp" in notebook["cells"][0]["source"]
    assert has_solutions(notebook) and not has_solutions(copy)


def test_checker_helpers_explain_what_is_wrong():
    with pytest.raises(ExerciseError, match="forget `return`"):
        call(lambda s: None, 1, name="softmax")
    with pytest.raises(ExerciseError, match=r"expected shape \(3,\), got \(2,\)"):
        expect_close([1, 2], [1, 2, 3], "softmax([1, 2, 3])")
    with pytest.raises(ExerciseError, match="contains nan"):
        expect_close([np.nan, 1.0], [0.5, 0.5], "softmax")
    with pytest.raises(ExerciseError, match=r"expected \[0.5, 0.5\], got \[0.4, 0.6\]"):
        expect_close([0.4, 0.6], [0.5, 0.5], "softmax")
    expect_close([0.5, 0.5], [0.5, 0.5], "softmax")  # right: no error


def test_every_notebook_with_exercises_imports_the_stub_exception():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        if has_solutions(notebook):
            sources = "".join("".join(c["source"]) for c in notebook["cells"])
            assert "NotDoneYet" in sources.split("# BEGIN SOLUTION")[0], path.name
            stub_solutions(sources)  # markers balanced
