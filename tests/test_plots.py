"""The course's figures: drawn in the projector style, sized for a 16:9 slide."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no screen in tests

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from fer_helpers import plots
from fer_helpers.data import FaceSplit
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.plots import COURSE_STYLE, SLIDE_SIZE

RNG = np.random.default_rng(0)
COUNTS = pd.DataFrame(
    {"train": [40, 4, 41, 72, 48, 31, 49], "validation": [5, 1, 5, 9, 7, 4, 6]}, index=EMOTIONS
)
HISTORY = {
    "train_loss": [1.0, 0.7, 0.5],
    "val_loss": [0.9, 0.8, 0.85],
    "train_acc": [0.5, 0.7, 0.8],
    "val_acc": [0.55, 0.6, 0.6],
}


def split() -> FaceSplit:
    labels = np.repeat(np.arange(len(EMOTIONS)), 8)
    images = RNG.integers(0, 256, (len(labels), 48, 48), dtype=np.uint8)
    return FaceSplit("train", images, labels, np.arange(len(labels)).astype(str))


HELPERS = {
    "sample_grid": lambda: plots.sample_grid(split(), per_class=8),
    "class_histograms": lambda: plots.class_histograms(COUNTS),
    "class_shares": lambda: plots.class_shares(COUNTS),
    "training_curves": lambda: plots.training_curves(HISTORY),
    "confusion_heatmap": lambda: plots.confusion_heatmap(RNG.integers(0, 50, (7, 7)), EMOTIONS),
    "prediction_grid": lambda: plots.prediction_grid(
        RNG.integers(0, 256, (8, 48, 48)), [0, 1, 2] * 2 + [0, 1], [0] * 8, COURSE_CLASSES
    ),
}


@pytest.fixture(autouse=True)
def default_style_and_no_leftover_figures():
    """Every test starts from matplotlib's defaults, as a notebook that reset them would."""
    with matplotlib.rc_context():
        plt.rcdefaults()
        yield
    plt.close("all")


def texts(fig) -> list:
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


@pytest.mark.parametrize("name", HELPERS)
def test_every_helper_draws_in_the_course_style(name):
    assert matplotlib.rcParams["font.size"] != COURSE_STYLE["font.size"]  # defaults now
    fig = HELPERS[name]()
    assert fig.dpi == COURSE_STYLE["figure.dpi"]
    sizes = [t.get_fontsize() for t in texts(fig)]
    # Nothing smaller than "small" of the course's 15 pt: readable from the back of a room.
    assert min(sizes) >= 0.8 * COURSE_STYLE["font.size"], sorted(sizes)[:3]
    title = fig._suptitle or fig.axes[0].title  # the figure's own title
    assert title.get_text() and title.get_fontsize() == COURSE_STYLE["figure.titlesize"]
    assert matplotlib.rcParams["font.size"] != COURSE_STYLE["font.size"]  # left as it was


@pytest.mark.parametrize("name", ["class_histograms", "class_shares", "training_curves"])
def test_charts_fit_a_16_to_9_slide(name):
    width, height = HELPERS[name]().get_size_inches()
    assert width <= SLIDE_SIZE[0] + 2 and height <= SLIDE_SIZE[1]
    assert 1.5 <= width / height <= 2.2


def test_curves_have_thick_lines_and_whole_epochs():
    fig = plots.training_curves(HISTORY)
    widths = {line.get_linewidth() for ax in fig.axes for line in ax.get_lines()}
    assert widths == {COURSE_STYLE["lines.linewidth"]}
    one = plots.training_curves({k: v[:1] for k, v in HISTORY.items()})
    assert list(one.axes[0].get_xticks()) == [1]  # not 0.95 ... 1.05


def test_importing_the_module_styles_the_notebooks_own_figures():
    plots.use_course_style()  # what `from fer_helpers import plots` did on import
    for key, value in COURSE_STYLE.items():
        assert matplotlib.rcParams[key] == (list(value) if isinstance(value, tuple) else value)
    fig, ax = plt.subplots()
    assert list(fig.get_size_inches()) == list(SLIDE_SIZE)
    assert ax.title.get_fontsize() == COURSE_STYLE["axes.titlesize"]


def test_course_style_applies_only_inside_its_block():
    with plots.course_style():
        assert matplotlib.rcParams["axes.titlesize"] == COURSE_STYLE["axes.titlesize"]
    assert matplotlib.rcParams["axes.titlesize"] != COURSE_STYLE["axes.titlesize"]
