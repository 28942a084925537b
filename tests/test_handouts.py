"""Exercises and learner copies: solutions become stubs that run the reference and say so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer_helpers.course.handouts import has_solutions, learner_notebook, stub_solutions
from fer_helpers.exercises import ANNOUNCED, ExerciseError, NotDoneYet, call, expect_close
from fer_helpers.exercises.softmax import check_cross_entropy, check_one_hot, check_softmax

ROOT = Path(__file__).resolve().parents[1]

CELL = '''def softmax(scores):
    """Probabilities from scores."""
    # BEGIN SOLUTION softmax
    exps = np.exp(scores - scores.max())
    return exps / exps.sum()
    # END SOLUTION
x = 1'''


LOUD = "\u26a0 {}: not done yet \u2014 using the reference so the rest of the notebook runs"


@pytest.fixture(autouse=True)
def fresh_kernel():
    """Each test starts as a fresh kernel does: no exercise announced yet."""
    ANNOUNCED.clear()
    yield
    ANNOUNCED.clear()


def learner_cell(source: str) -> dict:
    """The namespace after running the learner copy of a cell (as a kernel would)."""
    namespace = {"NotDoneYet": NotDoneYet, "np": np}
    exec(stub_solutions(source), namespace)
    return namespace


def test_stub_keeps_the_function_valid_and_drops_the_solution():
    stubbed = stub_solutions(CELL)
    assert "np.exp" not in stubbed and "BEGIN" not in stubbed
    assert "    return NotDoneYet.use_reference('softmax', locals())  # your code here" in stubbed
    namespace = learner_cell(CELL)
    assert namespace["x"] == 1


def test_a_stub_runs_the_reference_and_says_so_loudly_once(capsys):
    softmax = learner_cell(CELL)["softmax"]
    np.testing.assert_allclose(softmax(np.array([0.0, 0.0])), [0.5, 0.5])
    np.testing.assert_allclose(softmax(np.array([[1.0, 1.0, 1.0]])), [[1 / 3] * 3])
    out, err = capsys.readouterr()
    assert out == "" and err.count(LOUD.format("softmax")) == 1 and len(err.splitlines()) == 1


def test_a_checker_of_a_stub_says_not_done_and_does_not_stop(capsys):
    check_softmax(learner_cell(CELL)["softmax"])  # no exception: the notebook goes on
    out, err = capsys.readouterr()
    assert "OK" not in out and LOUD.format("softmax") in err
    check_softmax(learner_cell(CELL)["softmax"])  # run again, it says so again
    assert LOUD.format("softmax") in capsys.readouterr().err


def test_the_learners_own_version_is_used_and_checked(capsys):
    def softmax(scores):
        exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return exps / exps.sum(axis=-1, keepdims=True)

    check_softmax(softmax)
    out, err = capsys.readouterr()
    assert out == "OK: softmax passed all 7 checks\n" and err == ""

    def wrong(scores):
        return np.exp(scores) / np.exp(scores).sum()

    with pytest.raises(ExerciseError):
        check_softmax(wrong)


def test_a_stub_used_by_the_learners_code_does_not_hide_its_ok(capsys):
    cells = learner_cell(
        "def one_hot(labels, num_classes):\n"
        "    # BEGIN SOLUTION one_hot\n"
        "    return np.eye(num_classes)[labels]\n"
        "    # END SOLUTION\n"
        "def cross_entropy(probs, label):\n"
        "    y = one_hot(np.array([label]), len(probs))[0]\n"
        "    return float(-np.log((y * probs).sum()))\n"
    )
    check_cross_entropy(cross_entropy=cells["cross_entropy"])  # by keyword, too
    out, err = capsys.readouterr()
    assert out.startswith("OK: cross_entropy passed") and LOUD.format("one_hot") in err
    check_one_hot(cells["one_hot"])
    out, err = capsys.readouterr()
    assert "OK" not in out and LOUD.format("one_hot") in err


def test_a_method_is_stubbed_and_a_solution_outside_a_function_is_refused():
    cell = (
        "class Model:\n"
        "    def __init__(self, num_classes=3):\n"
        "        # BEGIN SOLUTION MySI100FaceNet layers\n"
        "        self.fc = 1\n"
        "        # END SOLUTION\n"
    )
    assert "        return NotDoneYet.use_reference('MySI100FaceNet layers', locals())" in (
        stub_solutions(cell)
    )
    with pytest.raises(ValueError, match="line 2: the solution 'weights' is not inside a function"):
        stub_solutions("x = 1\n# BEGIN SOLUTION weights\nw = 2\n# END SOLUTION")
    with pytest.raises(ValueError, match="not inside a function"):  # after a function ends
        stub_solutions("def f():\n    return 1\n# BEGIN SOLUTION w\nw = 2\n# END SOLUTION")
    assert "use_reference('w'" in stub_solutions(
        "%matplotlib inline\n" + CELL.replace("softmax", "w")
    )


def test_an_exercise_without_a_reference_stops_as_before():
    cell = "def f(x):\n    # BEGIN SOLUTION not in the references\n    return x\n    # END SOLUTION"
    with pytest.raises(NotDoneYet, match="not in the references is not done yet"):
        learner_cell(cell)["f"](1)


def test_a_renamed_parameter_gets_a_clear_message():
    cell = (
        "def softmax(logits):\n    # BEGIN SOLUTION softmax\n    return logits\n    # END SOLUTION"
    )
    with pytest.raises(
        TypeError, match=r"takes \(scores\), but the exercise's function has no scores"
    ):
        learner_cell(cell)["softmax"](np.zeros(3))


def test_unbalanced_markers_are_refused():
    with pytest.raises(ValueError, match="without"):
        stub_solutions("def f():\n    # BEGIN SOLUTION\n    x = 1")
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
            for cell in notebook["cells"]:  # markers balanced, each solution in a function
                if cell["cell_type"] == "code":
                    stub_solutions("".join(cell["source"]))
