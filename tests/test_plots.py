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


# --- what the figures draw: the numbers and pictures read back from the Figure -------------------
#
# Each test below reads back from the matplotlib Figure what the helper drew (bar heights,
# line data, heatmap cells, the pixels of each image, titles, tick labels) and compares it with
# a number worked out independently, on inputs where a swapped order or a transposed matrix
# would draw something else.


def tick_labels(axis) -> dict[float, str]:
    """Tick position -> tick label text, for an x or y axis."""
    return {
        float(pos): label.get_text()
        for pos, label in zip(axis.get_ticklocs(), axis.get_ticklabels(), strict=True)
    }


def grid_position(ax) -> tuple[int, int]:
    spec = ax.get_subplotspec()
    return spec.rowspan.start, spec.colspan.start


def drawn_image(ax) -> np.ndarray:
    (image,) = ax.get_images()
    return np.asarray(image.get_array())


# Every class differs, and the splits are distributed differently; the index is not in
# FER2013's order; the 'total' row is wrong on purpose: a helper that kept it would show it.
UNEVEN = pd.DataFrame(
    {"train": [7215, 436, 4830, 12], "validation": [3, 90, 0, 41]},
    index=["happy", "disgust", "sad", "fear"],
)
UNEVEN_WITH_TOTAL = pd.concat(
    [UNEVEN, pd.DataFrame({"train": [999_999], "validation": [1]}, index=["total"])]
)


def uneven_split() -> tuple[FaceSplit, dict[str, int]]:
    """Every image differs; the classes have 0, 2, 3, 6 and 9 images, interleaved."""
    per_class = {"angry": 6, "disgust": 2, "fear": 0, "happy": 9, "sad": 3, "surprise": 1}
    labels = np.concatenate([np.full(n, EMOTIONS.index(c)) for c, n in per_class.items()])
    labels = np.random.default_rng(1).permutation(labels)
    # Mid-grey pixels only: a helper that let matplotlib stretch the contrast would show
    # them as black to white (its colour limits would not be 0 and 255).
    images = np.random.default_rng(2).integers(20, 200, (len(labels), 48, 48), dtype=np.uint8)
    return FaceSplit("val", images, labels, np.arange(len(labels)).astype(str)), per_class


@pytest.mark.parametrize("per_class", [3, 4])
def test_sample_grid_shows_faces_of_each_rows_class_only(per_class):
    split, counts = uneven_split()
    classes = ("sad", "happy", "fear", "disgust", "angry")  # not FER2013's order
    fig = plots.sample_grid(split, per_class=per_class, seed=3, classes=classes)
    assert len(fig.axes) == len(classes) * per_class
    rows: dict[int, list] = {}
    for ax in fig.axes:
        rows.setdefault(grid_position(ax)[0], []).append(ax)
    assert sorted(rows) == list(range(len(classes)))
    for row, name in enumerate(classes):
        axes = sorted(rows[row], key=lambda ax: grid_position(ax)[1])
        assert axes[0].get_ylabel() == name
        shown = []
        for ax in axes:
            if not ax.get_images():
                assert not ax.axison  # an empty place is blank, no frame
                continue
            assert ax.get_images()[0].get_clim() == (0, 255)  # no contrast stretch
            pixels = drawn_image(ax)
            (where,) = [i for i, image in enumerate(split.images) if np.array_equal(image, pixels)]
            shown.append(where)
        # As many as the row asks for, or all the class has; none twice; all of this class.
        assert len(shown) == min(per_class, counts.get(name, 0))
        assert len(set(shown)) == len(shown)
        assert [EMOTIONS[split.labels[i]] for i in shown] == [name] * len(shown)
        # The faces fill the row from the left.
        assert [bool(ax.get_images()) for ax in axes] == [c < len(shown) for c in range(per_class)]
    assert fig._suptitle.get_text() == f"val: {per_class} random faces per class"


def test_sample_grid_shows_every_face_of_a_class_that_has_exactly_per_class():
    split, counts = uneven_split()
    fig = plots.sample_grid(split, per_class=counts["sad"], classes=("sad",), title="Sad")
    shown = {
        next(i for i, image in enumerate(split.images) if np.array_equal(image, drawn_image(ax)))
        for ax in fig.axes
    }
    assert shown == set(np.flatnonzero(split.labels == EMOTIONS.index("sad")))
    assert fig._suptitle.get_text() == "Sad"


def test_class_histograms_bar_heights_are_the_counts_of_each_class_in_each_split():
    fig = plots.class_histograms(UNEVEN_WITH_TOTAL)
    assert len(fig.axes) == 2  # one chart per split, the 'total' row left out
    expected = {
        "train": {"happy": 7215, "disgust": 436, "sad": 4830, "fear": 12},
        "validation": {"happy": 3, "disgust": 90, "sad": 0, "fear": 41},
    }
    titles = {"train": "train (12,493 images)", "validation": "validation (134 images)"}
    for ax, split in zip(sorted(fig.axes, key=lambda ax: grid_position(ax)[1]), expected):
        assert ax.get_title() == titles[split]
        labels = tick_labels(ax.xaxis)
        assert list(labels.values()) == ["happy", "disgust", "sad", "fear"]  # the table's order
        (bars,) = ax.containers
        drawn = {labels[p.get_x() + p.get_width() / 2]: p.get_height() for p in bars}
        assert drawn == expected[split]
        # The numbers over the bars, with thousands separated, in the bars' order.
        assert [t.get_text() for t in ax.texts] == [f"{n:,}" for n in expected[split].values()]
    assert [t.get_text() for t in fig.axes[0].texts] == ["7,215", "436", "4,830", "12"]


def test_class_shares_are_each_count_over_its_splits_total():
    fig = plots.class_shares(UNEVEN_WITH_TOTAL)
    (ax,) = fig.axes
    labels = tick_labels(ax.xaxis)
    assert list(labels.values()) == ["happy", "disgust", "sad", "fear"]
    counts = np.array([[7215, 3], [436, 90], [4830, 0], [12, 41]], dtype=float)
    expected = 100 * counts / counts.sum(axis=0)  # column j: split j's shares, in %
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]
    assert len(ax.containers) == 2
    for j, bars in enumerate(ax.containers):
        assert bars.get_label() == ["train", "validation"][j]
        heights = {}
        for bar in bars:
            # Grouped bars sit beside their class's tick: the nearest tick names the class.
            centre = bar.get_x() + bar.get_width() / 2
            heights[labels[min(labels, key=lambda pos: abs(pos - centre))]] = bar.get_height()
        assert list(heights) == ["happy", "disgust", "sad", "fear"]
        np.testing.assert_allclose(list(heights.values()), expected[:, j])
        assert sum(heights.values()) == pytest.approx(100)
    # Spot values by hand: 7215 of 12,493 training images; 90 of 134 validation images.
    assert ax.containers[0][0].get_height() == pytest.approx(57.7523, abs=1e-4)
    assert ax.containers[1][1].get_height() == pytest.approx(67.1642, abs=1e-4)


def test_training_curves_draw_each_history_list_against_epochs_from_one():
    history = {  # keys in another order than drawn, and every list different
        "val_acc": [0.30, 0.45, 0.41, 0.52],
        "train_loss": [1.9, 1.2, 0.8, 0.6],
        "train_acc": [0.25, 0.50, 0.70, 0.80],
        "val_loss": [1.7, 1.4, 1.5, 1.3],
    }
    fig = plots.training_curves(history, title="Run 7")
    loss_ax, acc_ax = sorted(fig.axes, key=lambda ax: grid_position(ax)[1])
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("loss", "accuracy")
    assert (loss_ax.get_xlabel(), acc_ax.get_xlabel()) == ("epoch", "epoch")
    expected = {
        loss_ax: {"train": [1.9, 1.2, 0.8, 0.6], "validation": [1.7, 1.4, 1.5, 1.3]},
        acc_ax: {"train": [25, 50, 70, 80], "validation": [30, 45, 41, 52]},  # in %
    }
    for ax, curves in expected.items():
        drawn = {line.get_label(): line for line in ax.get_lines()}
        assert sorted(drawn) == ["train", "validation"]
        for label, ys in curves.items():
            np.testing.assert_array_equal(drawn[label].get_xdata(), [1, 2, 3, 4])
            np.testing.assert_allclose(drawn[label].get_ydata(), ys)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 4]
        assert ticks and all(float(t).is_integer() for t in ticks)  # whole epochs only
    assert fig._suptitle.get_text() == "Run 7"


# A class predicted but never true (row 1 is empty), and no two cells mirror each other:
# a transposed matrix, or rows swapped, draws other numbers.
CM = np.array([[3, 1, 0], [0, 0, 0], [2, 5, 1]])


def heatmap_cells(ax) -> dict[tuple[int, int], str]:
    """(row, column) -> the annotation drawn in that cell."""
    return {(int(t.get_position()[1]), int(t.get_position()[0])): t.get_text() for t in ax.texts}


@pytest.mark.parametrize(
    ("normalize", "cells"),
    [
        (False, [["3", "1", "0"], ["0", "0", "0"], ["2", "5", "1"]]),
        (True, [["75.0", "25.0", "0.0"], ["0.0", "0.0", "0.0"], ["25.0", "62.5", "12.5"]]),
    ],
)
def test_confusion_heatmap_cells_by_hand(normalize, cells):
    fig = plots.confusion_heatmap(CM, ["happy", "neutral", "sad"], normalize=normalize)
    ax, colorbar = fig.axes
    assert heatmap_cells(ax) == {(i, j): cells[i][j] for i in range(3) for j in range(3)}
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert colorbar.get_ylabel() == ("% of the true class" if normalize else "images")


def test_confusion_heatmap_rows_are_true_columns_predicted_in_class_order():
    rng = np.random.default_rng(7)
    cm = rng.integers(0, 60, (7, 7))
    cm[4] = 0  # 'sad' never true, but predicted
    cm[:, 1] = 0  # 'disgust' never predicted
    names = list(EMOTIONS)
    for normalize in (False, True):
        fig = plots.confusion_heatmap(cm, names, normalize=normalize)
        ax = fig.axes[0]
        # Independent of the helper: row i over row i's total (an empty row stays 0).
        rows = cm.sum(axis=1, keepdims=True)
        expected = (
            np.divide(100.0 * cm, rows, out=np.zeros(cm.shape), where=rows > 0) if normalize else cm
        )
        (mesh,) = ax.collections
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(7, 7), expected)
        fmt = "{:.1f}" if normalize else "{:d}"
        assert heatmap_cells(ax) == {
            (i, j): fmt.format(expected[i, j]) for i in range(7) for j in range(7)
        }
        if normalize:
            sums = expected.sum(axis=1)
            np.testing.assert_allclose(sums[cm.sum(axis=1) > 0], 100)
        # Cell (i, j) is at (j + 0.5, i + 0.5); the tick there names class i (y) or j (x).
        centres = [i + 0.5 for i in range(7)]
        assert tick_labels(ax.xaxis) == dict(zip(centres, names))
        assert tick_labels(ax.yaxis) == dict(zip(centres, names))
        assert ax.yaxis_inverted()  # row 0 (the first class) on top, as a printed matrix


PROBS = np.array(
    [
        [0.70, 0.20, 0.10],
        [0.05, 0.55, 0.40],
        [0.10, 0.81, 0.09],
        [0.35, 0.25, 0.40],
        [0.30, 0.08, 0.62],
    ]
)
TRUE = [0, 2, 1, 2, 0]
PREDICTED = [0, 1, 1, 2, 2]  # 'neutral' predicted for a sad face; 'sad' for a happy one
TITLES = [
    ("happy 70%", "black"),
    ("neutral 55%\n(true: sad)", "red"),
    ("neutral 81%", "black"),
    ("sad 40%", "black"),
    ("sad 62%\n(true: happy)", "red"),
]


@pytest.mark.parametrize("with_probabilities", [True, False])
def test_prediction_grid_titles_name_the_prediction_and_the_true_class_of_wrong_ones(
    with_probabilities,
):
    images = np.random.default_rng(4).integers(30, 220, (5, 48, 48), dtype=np.uint8)
    fig = plots.prediction_grid(
        images,
        TRUE,
        PREDICTED,
        COURSE_CLASSES,
        probabilities=PROBS if with_probabilities else None,
        columns=3,
        title="Five faces",
    )
    assert len(fig.axes) == 6  # 2 rows of 3
    axes = sorted(fig.axes, key=grid_position)
    assert [grid_position(ax) for ax in axes] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    for ax, image, (title, color) in zip(axes, images, TITLES):
        if not with_probabilities:
            title = title.split(" ")[0] + title[title.index("%") + 1 :]
        assert ax.title.get_text() == title
        assert matplotlib.colors.same_color(ax.title.get_color(), color)
        np.testing.assert_array_equal(drawn_image(ax), image)
        assert ax.get_images()[0].get_clim() == (0, 255)
    assert not axes[5].get_images() and axes[5].title.get_text() == ""
    assert not any(ax.axison for ax in axes)  # faces without frames or ticks
    assert fig._suptitle.get_text() == "Five faces"


def test_prediction_grid_titles_without_probabilities_by_hand():
    images = np.zeros((3, 48, 48), dtype=np.uint8)
    fig = plots.prediction_grid(images, [1, 0, 2], [1, 2, 0], ["a", "b", "c"], columns=4)
    titles = [ax.title.get_text() for ax in sorted(fig.axes, key=grid_position)]
    assert titles == ["b", "c\n(true: a)", "a\n(true: c)", ""]


def test_prediction_grid_shows_model_inputs_as_their_first_channels_pixels():
    pixels = np.random.default_rng(5).integers(10, 240, (4, 48, 48)).astype(np.float32)
    first = pixels / 127.5 - 1  # what the model saw: [-1, 1]
    x = np.stack([first, -first, np.zeros_like(first)], axis=1)  # (4, 3, 48, 48)
    fig = plots.prediction_grid(x, [0, 1, 2, 0], [0, 1, 2, 1], COURSE_CLASSES, columns=4)
    for ax, expected in zip(sorted(fig.axes, key=grid_position), pixels):
        np.testing.assert_allclose(drawn_image(ax), expected, atol=1e-3)
        assert ax.get_images()[0].get_clim() == (0, 255)
