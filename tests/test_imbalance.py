"""fer_helpers.imbalance: class weights and mirroring against hand computation and
scikit-learn; the strategy comparison trained on tiny synthetic data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sklearn.metrics as skm
from sklearn.utils.class_weight import compute_class_weight

from fer_helpers import imbalance, paths, recipes
from fer_helpers.checkpoints import load_model
from fer_helpers.data import FaceData, FaceSplit, load_synthetic
from fer_helpers.errors import DataError
from fer_helpers.imbalance import (
    STRATEGIES,
    compare_strategies,
    confused_indices,
    mirror_images,
    strategy_recipe,
    strategy_table,
    with_mirrored,
)
from fer_helpers.inference import predict
from fer_helpers.labels import EMOTIONS
from fer_helpers.losses import class_weights

FER2013_TRAIN = [3995, 436, 4097, 7215, 4830, 3171, 4965]

# --- class weights ---------------------------------------------------------------------------


def test_class_weights_by_hand() -> None:
    # N = 40 images, k = 2 classes: 40 / (2 * 30) and 40 / (2 * 10)
    np.testing.assert_allclose(class_weights([30, 10]), [2 / 3, 2.0])
    np.testing.assert_allclose(class_weights([5, 5, 5]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(class_weights([30, 10], scheme="sqrt"), [(2 / 3) ** 0.5, 2**0.5])


def test_class_weights_match_sklearn_balanced_on_fer2013_counts() -> None:
    labels = np.repeat(np.arange(7), FER2013_TRAIN)
    expected = compute_class_weight("balanced", classes=np.arange(7), y=labels)
    weights = class_weights(FER2013_TRAIN)
    np.testing.assert_allclose(weights, expected)
    # the weighted image count is N again, and disgust (the rarest) weighs most
    assert np.isclose((weights * FER2013_TRAIN).sum(), sum(FER2013_TRAIN))
    assert weights.argmax() == EMOTIONS.index("disgust")


def test_class_weights_reject_bad_input() -> None:
    with pytest.raises(DataError, match="class 1 has 0 images"):
        class_weights([5, 0, 3])
    with pytest.raises(ValueError, match="unknown scheme 'log'"):
        class_weights([5, 3], scheme="log")
    with pytest.raises(ValueError, match="one number per class"):
        class_weights([[5, 3]])


# --- mirroring -------------------------------------------------------------------------------


def test_mirror_images_reverses_each_row() -> None:
    images = np.array([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [0, 0, 1]]], dtype=np.uint8)
    expected = np.array([[[3, 2, 1], [6, 5, 4]], [[9, 8, 7], [1, 0, 0]]], dtype=np.uint8)
    before = images.copy()
    mirrored = mirror_images(images)
    np.testing.assert_array_equal(mirrored, expected)
    np.testing.assert_array_equal(mirror_images(mirrored), images)
    np.testing.assert_array_equal(images, before)  # the input is left alone
    assert mirrored.dtype == np.uint8 and mirrored.flags["C_CONTIGUOUS"]
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        mirror_images(images[0])


def test_with_mirrored_appends_flipped_copies_with_their_labels() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    faces = FaceSplit("train", images, np.array([4, 6, 4]), np.array([10, 11, 12]))
    grown = with_mirrored(faces, [2, 0])
    assert len(grown) == 5
    np.testing.assert_array_equal(grown.images[:3], images)
    np.testing.assert_array_equal(grown.images[3], np.fliplr(images[2]))
    np.testing.assert_array_equal(grown.images[4], np.fliplr(images[0]))
    assert grown.labels.tolist() == [4, 6, 4, 4, 4]
    assert grown.ids.tolist() == ["10", "11", "12", "12-mirrored", "10-mirrored"]
    assert len(faces) == 3  # the original split is unchanged
    assert len(with_mirrored(faces, [])) == 3


# --- confused images and the comparison table --------------------------------------------


def test_confused_indices_lists_the_pairs_mistakes_most_doubtful_first() -> None:
    y_true = np.array([0, 0, 0, 2, 0, 0])
    probs = np.array(
        [
            [0.2, 0.8, 0.0],  # true 0 predicted 1 by a gap of 0.6
            [0.0, 0.1, 0.9],  # true 0 predicted 2: another mistake
            [0.45, 0.55, 0.0],  # true 0 predicted 1 by a gap of 0.1: the most doubtful
            [0.1, 0.9, 0.0],  # true 2, not the pair's true class
            [0.9, 0.1, 0.0],  # right
            [0.3, 0.6, 0.1],  # true 0 predicted 1 by a gap of 0.3
        ]
    )
    assert confused_indices(y_true, probs, 0, 1).tolist() == [2, 5, 0]
    assert confused_indices(y_true, probs, 0, 2).tolist() == [1]
    assert confused_indices(y_true, probs, 2, 0).tolist() == []


def test_strategy_table_by_hand() -> None:
    plain = np.array([[8, 2], [4, 1]])  # recall 0.8, 0.2; precision 8/12, 1/3
    other = np.array([[5, 5], [1, 4]])
    table = strategy_table({"plain": plain, "weighted": other}, ["happy", "disgust"])
    assert table.columns.tolist() == ["plain", "weighted"]
    assert table.index.names == ["metric", "class"]
    assert len(table) == 3 * 2 + 2
    assert table.loc[("recall", "happy"), "plain"] == pytest.approx(0.8)
    assert table.loc[("recall", "disgust"), "plain"] == pytest.approx(0.2)
    assert table.loc[("precision", "happy"), "plain"] == pytest.approx(8 / 12)
    f1 = 2 * (1 / 3) * 0.2 / (1 / 3 + 0.2)
    assert table.loc[("f1", "disgust"), "plain"] == pytest.approx(f1)
    assert table.loc[("accuracy", "all"), "plain"] == pytest.approx(9 / 15)
    assert table.loc[("balanced accuracy", "all"), "weighted"] == pytest.approx((0.5 + 0.8) / 2)


def test_each_strategy_is_the_fast_recipe_with_its_one_remedy() -> None:
    data = load_synthetic(tiny=True)
    for strategy, sampling, weights in (
        ("plain", "shuffle", "none"),
        ("weighted", "shuffle", "inverse"),
        ("balanced", "balanced", "none"),
    ):
        recipe = strategy_recipe(strategy, epochs=2)
        assert (recipe.sampling, recipe.class_weights) == (sampling, weights)
        # everything else is the fast recipe's: only name, epochs and the remedy differ
        assert (
            replace(
                recipe,
                name="fast",
                epochs=recipes.FAST.epochs,
                sampling="shuffle",
                class_weights="none",
            )
            == recipes.FAST
        )
        assert strategy_recipe(strategy).epochs == imbalance.SEVEN_EPOCHS
        loader, _ = recipes.recipe_loaders(recipe, data, EMOTIONS)
        assert loader.balanced == (strategy == "balanced") and loader.shuffle
    with pytest.raises(ValueError, match="unknown strategy 'oversample'"):
        strategy_recipe("oversample", epochs=1)


# --- training the three ways (tiny synthetic data) ---------------------------------------


@pytest.fixture
def unbalanced_tiny(tmp_path, monkeypatch) -> FaceData:
    """Tiny synthetic faces with only 2 training images of disgust; weights go to tmp_path."""
    monkeypatch.setattr(paths, "WEIGHTS_DIR", tmp_path)
    data = load_synthetic(tiny=True)
    train_faces = data["train"]
    disgust = np.flatnonzero(train_faces.labels == EMOTIONS.index("disgust"))
    keep = np.setdiff1d(np.arange(len(train_faces)), disgust[2:])
    data.splits["train"] = train_faces.take(keep)
    return data


def test_compare_strategies_trains_each_way_and_scores_on_validation(
    unbalanced_tiny, tmp_path, monkeypatch
) -> None:
    seen = []
    real_build, real_loaders = recipes.build_training, recipes.recipe_loaders

    def spy_build(recipe, *args, **kwargs):
        built = real_build(recipe, *args, **kwargs)
        weight = built[1].weight
        seen.append([recipe.name, None if weight is None else weight.numpy()])
        return built

    def spy_loaders(recipe, *args, **kwargs):
        loaders = real_loaders(recipe, *args, **kwargs)
        seen.append([recipe.name, loaders[0].balanced])
        return loaders

    monkeypatch.setattr(recipes, "build_training", spy_build)
    monkeypatch.setattr(recipes, "recipe_loaders", spy_loaders)
    quiet = {"progress": False, "log": lambda line: None}
    table = compare_strategies(
        unbalanced_tiny, epochs=1, recipe_changes={"batch_size": 16}, **quiet
    )

    counts = unbalanced_tiny.dataset("train", EMOTIONS).class_counts()
    assert counts[1] == 2
    assert [name for name, _ in seen] == [f"seven-{s}" for s in STRATEGIES for _ in (0, 1)]
    assert [balanced for _, balanced in seen[0::2]] == [False, False, True]
    assert seen[1][1] is None and seen[5][1] is None  # plain and balanced: no weights
    np.testing.assert_allclose(seen[3][1], class_weights(counts))  # the weighted loss
    assert [p.name for p in sorted(tmp_path.glob("seven_*.pth"))] == [
        "seven_balanced.synthetic-tiny.pth",
        "seven_plain.synthetic-tiny.pth",
        "seven_weighted.synthetic-tiny.pth",
    ]
    assert table.columns.tolist() == list(STRATEGIES)
    assert len(table) == 3 * 7 + 2

    # Each column agrees with scikit-learn on the saved model's validation predictions.
    validation = unbalanced_tiny.dataset("validation", EMOTIONS, channels=1)  # the fast recipe's
    for strategy in STRATEGIES:
        path = tmp_path / f"seven_{strategy}.synthetic-tiny.pth"
        model, info = load_model(path, class_names=EMOTIONS)
        assert info["epoch"] == 1
        y_true, y_pred, _ = predict(model, imbalance.FaceLoader(validation, 64))
        column = table[strategy]
        assert column[("accuracy", "all")] == pytest.approx(skm.accuracy_score(y_true, y_pred))
        recall = skm.recall_score(y_true, y_pred, labels=range(7), average=None, zero_division=0)
        np.testing.assert_allclose(column["recall"].to_numpy(), recall)

    # A second run reuses the finished models: no training at all.
    def no_fit(*args, **kwargs):
        raise AssertionError("fit was called although the models were finished")

    monkeypatch.setattr(recipes, "fit", no_fit)
    again = compare_strategies(
        unbalanced_tiny, epochs=1, recipe_changes={"batch_size": 16}, **quiet
    )
    np.testing.assert_allclose(again.to_numpy(), table.to_numpy())

    # Other training faces (mirrored copies added) are another run: trained, not reused.
    mirrored = with_mirrored(unbalanced_tiny["train"], [0, 1])
    with pytest.raises(AssertionError, match="fit was called"):
        imbalance.train_strategy(
            unbalanced_tiny, "plain", 1, faces=mirrored, recipe_changes={"batch_size": 16}
        )
