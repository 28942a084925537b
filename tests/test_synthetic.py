"""Tests of the synthetic face generator (fer_helpers.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from fer_helpers.errors import DataError
from fer_helpers.synthetic import (
    SPLIT_COUNTS,
    SYNTHETIC_NOTICE,
    TINY_COUNTS,
    generate_faces,
    generate_split,
)

# FER2013's real class sizes (angry, disgust, fear, happy, sad, surprise, neutral).
FER2013_TRAIN = (3995, 436, 4097, 7215, 4830, 3171, 4965)
FER2013_PUBLIC_TEST = (467, 56, 496, 895, 653, 415, 607)


@pytest.fixture(scope="module")
def train() -> tuple[np.ndarray, np.ndarray]:
    return generate_split("train")


@pytest.fixture(scope="module")
def validation() -> tuple[np.ndarray, np.ndarray]:
    return generate_split("validation")


def image_keys(images: np.ndarray) -> set[bytes]:
    """Each image's bytes, to compare images across arrays as set members."""
    return {image.tobytes() for image in images}


def test_same_seed_same_faces_and_different_seed_different_faces() -> None:
    images, labels = generate_faces([3] * 7, seed=1)
    again, again_labels = generate_faces([3] * 7, seed=1)
    other, _ = generate_faces([3] * 7, seed=2)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    assert not image_keys(images) & image_keys(other)


def test_shapes_dtypes_and_label_order() -> None:
    counts = [2, 0, 3, 1, 4, 2, 5]
    images, labels = generate_faces(counts, seed=0)
    assert images.shape == (sum(counts), 48, 48) and images.dtype == np.uint8
    assert labels.shape == (sum(counts),) and labels.dtype == np.int64
    assert np.array_equal(labels, np.repeat(np.arange(7), counts))


def test_dict_counts_match_the_same_counts_as_a_sequence() -> None:
    from_dict = generate_faces({3: 4, 1: 2}, seed=5)
    from_list = generate_faces([0, 2, 0, 4, 0, 0, 0], seed=5)
    assert np.bincount(from_dict[1], minlength=7).tolist() == [0, 2, 0, 4, 0, 0, 0]
    assert np.array_equal(from_dict[0], from_list[0])


def test_a_class_does_not_depend_on_the_other_classes_counts() -> None:
    few, few_labels = generate_faces([1, 6, 2, 0, 0, 3, 1], seed=9)
    many, many_labels = generate_faces([9, 6, 0, 5, 7, 0, 4], seed=9)
    assert np.array_equal(few[few_labels == 1], many[many_labels == 1])


def test_classes_draw_their_own_faces() -> None:
    # Image i of two classes must not share its face, lighting and noise (one stream each).
    images, labels = generate_faces([20] * 7, seed=3)
    angry = images[labels == 0].reshape(20, -1).astype(np.float64)
    neutral = images[labels == 6].reshape(20, -1).astype(np.float64)
    same_index = [np.corrcoef(a, b)[0, 1] for a, b in zip(angry, neutral, strict=True)]
    assert np.mean(same_index) < 0.5  # measured: 0.01 (0.94 if the classes shared a stream)


def test_fewer_images_of_a_class_are_the_first_of_more() -> None:
    few, few_labels = generate_faces([3] * 7, seed=4)
    many, many_labels = generate_faces([40] * 7, seed=4)
    for label in range(7):
        assert np.array_equal(few[few_labels == label], many[many_labels == label][:3])


@pytest.mark.parametrize(
    "counts", [[1] * 6, [1] * 8, [1, 1, 1, -1, 1, 1, 1], [1.5] * 7, {7: 3}, {-1: 2}]
)
def test_bad_counts_raise_data_error(counts: object) -> None:
    with pytest.raises(DataError, match="counts|labels"):
        generate_faces(counts, seed=0)  # type: ignore[arg-type]


def test_unknown_split_raises_data_error() -> None:
    with pytest.raises(DataError, match="'valid'"):
        generate_split("valid")


def test_split_counts_follow_fer2013_class_sizes() -> None:
    scaled_down = {"train": (FER2013_TRAIN, 10), "validation": (FER2013_PUBLIC_TEST, 4)}
    for split, (real, divisor) in scaled_down.items():
        for count, n in zip(SPLIT_COUNTS[split], real, strict=True):
            assert abs(count - n / divisor) <= 1
    # The test split is FER2013's PrivateTest, which is distributed like PublicTest.
    for count, like in zip(SPLIT_COUNTS["test"], SPLIT_COUNTS["validation"], strict=True):
        assert abs(count - like) <= 0.15 * like
    for counts in SPLIT_COUNTS.values():
        assert min(counts) >= 5
        assert np.argmin(counts) == 1 and np.argmax(counts) == 3  # disgust rare, happy common


def test_splits_have_their_default_counts(
    train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray]
) -> None:
    for (_, labels), split in ((train, "train"), (validation, "validation")):
        assert tuple(np.bincount(labels, minlength=7)) == SPLIT_COUNTS[split]
    for split, per_class in TINY_COUNTS.items():
        _, labels = generate_split(split, tiny=True)
        assert np.bincount(labels, minlength=7).tolist() == [per_class] * 7


def test_tiny_split_is_the_start_of_the_full_split(train: tuple[np.ndarray, np.ndarray]) -> None:
    tiny, tiny_labels = generate_split("train", tiny=True)
    images, labels = train
    for label in range(7):
        assert np.array_equal(tiny[tiny_labels == label], images[labels == label][:8])


def test_no_image_repeats_within_or_across_splits(
    train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray]
) -> None:
    test_images, _ = generate_split("test")
    keys = [image_keys(images) for images in (train[0], validation[0], test_images)]
    assert [len(k) for k in keys] == [len(train[0]), len(validation[0]), len(test_images)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])


def test_images_use_the_grey_range(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = train
    spread = images.reshape(len(images), -1).std(axis=1)
    assert spread.min() > 5  # every image shows something, none is blank
    assert images.min() < 30 and images.max() > 225


def test_class_means_differ_more_than_under_shuffled_labels(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = train
    x = images.reshape(len(images), -1).astype(np.float32)
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)  # drop brightness

    def between_class_spread(y: np.ndarray) -> float:
        overall = x.mean(axis=0)
        return sum(
            (y == c).sum() * float(((x[y == c].mean(axis=0) - overall) ** 2).sum())
            for c in range(7)
        )

    rng = np.random.default_rng(0)
    shuffled = max(between_class_spread(rng.permutation(labels)) for _ in range(5))
    assert between_class_spread(labels) > 2 * shuffled  # measured: about 3.5x


def nearest_class_mean_accuracy(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]
) -> float:
    """Accuracy of predicting the class whose mean training image is nearest (raw pixels)."""
    (xa, ya), (xb, yb) = train, test
    xa = xa.reshape(len(xa), -1).astype(np.float32)
    xb = xb.reshape(len(xb), -1).astype(np.float32)
    means = np.stack([xa[ya == c].mean(axis=0) for c in range(7)])
    distances = (xb**2).sum(1, keepdims=True) - 2 * xb @ means.T + (means**2).sum(1)
    return float((distances.argmin(axis=1) == yb).mean())


def test_nearest_class_mean_is_far_from_perfect(
    train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray]
) -> None:
    assert nearest_class_mean_accuracy(train, validation) < 0.6  # measured: 0.23


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_logistic_regression_learns_well_above_chance(
    train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray]
) -> None:
    (xa, ya), (xb, yb) = train, validation
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=50))
    with threadpool_limits(1):  # many BLAS threads on 2 cores are much slower
        model.fit(xa.reshape(len(xa), -1) / 255.0, ya)
        accuracy = model.score(xb.reshape(len(xb), -1) / 255.0, yb)
    majority = np.bincount(yb).max() / len(yb)  # always guessing happy: about 0.25
    assert accuracy > max(0.4, majority + 0.15)  # measured: 0.62


def test_notice_is_one_loud_line() -> None:
    assert "\n" not in SYNTHETIC_NOTICE
    assert SYNTHETIC_NOTICE.startswith("SYNTHETIC DATA")
    assert "FER2013_DIR" in SYNTHETIC_NOTICE and "data/fer2013" in SYNTHETIC_NOTICE
