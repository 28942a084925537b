"""augment.mixup and the loader, recipe and loop that use it: faces mixed in pairs, soft targets."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from fer_helpers.augment import mixup
from fer_helpers.data import FaceDataset, FaceLoader, FaceSplit
from fer_helpers.errors import FerError
from fer_helpers.labels import fer_labels
from fer_helpers.recipes import FAST, settings_changed
from fer_helpers.train import fit


def _marked_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images whose only bright pixel is pixel i: a mixed image shows what it was mixed from."""
    x = torch.eye(n).reshape(n, 1, 1, n)
    return x, torch.arange(n)


def _read_mix(row: torch.Tensor) -> tuple[int, int, float]:
    """(own image, partner image, own weight) read off a mixed marked image."""
    values, where = row.flatten().topk(2)
    if values[1] == 0:  # mixed with itself
        return int(where[0]), int(where[0]), 1.0
    return int(where[0]), int(where[1]), float(values[0])


def test_each_face_is_its_own_weight_plus_its_partners_and_so_is_its_target():
    n = 9
    x, y = _marked_batch(n)
    mixed, targets = mixup(x, y, n, alpha=0.4, generator=torch.Generator().manual_seed(3))
    assert mixed.shape == x.shape and targets.shape == (n, n)
    weights, partners = set(), []
    for i in range(n):
        own, partner, lam = _read_mix(mixed[i])
        assert own == i or lam == pytest.approx(0.5)  # the larger share is the face itself
        if own != i:
            own, partner = i, own
        partners.append(partner)
        weights.add(round(lam, 5))
        expected = torch.zeros(n)
        expected[y[i]] += lam
        expected[y[partner]] += 1 - lam
        torch.testing.assert_close(targets[i], expected)
    assert len(weights) == 1  # one weight for the whole batch
    assert 0.5 <= weights.pop() <= 1
    assert sorted(partners) == list(range(n))  # the partners are a permutation of the batch
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(n))


def test_the_weight_follows_the_larger_half_of_beta_alpha_alpha():
    # E[max(L, 1 - L)] for L ~ Beta(alpha, alpha), by numerical integration of scipy's density.
    alpha = 0.3
    expected, _ = integrate.quad(
        lambda t: max(t, 1 - t) * stats.beta.pdf(t, alpha, alpha), 0, 1, points=[0.5]
    )
    x, y = _marked_batch(2)
    generator = torch.Generator().manual_seed(0)
    lams = []
    for _ in range(3000):
        mixed, _ = mixup(x, y, 2, alpha, generator)
        if mixed[0, 0, 0, 1] > 0:  # the two faces were paired: face 0 shows its weight
            lams.append(float(mixed[0, 0, 0, 0]))
    lams_t = torch.tensor(lams)
    assert len(lams) > 1000
    assert float(lams_t.min()) >= 0.5 and float(lams_t.max()) <= 1.0
    assert float(lams_t.mean()) == pytest.approx(expected, abs=0.015)


def test_mixup_is_reproducible_and_refuses_a_weight_of_zero():
    x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    a = mixup(x, y, 3, 0.3, torch.Generator().manual_seed(1))
    b = mixup(x, y, 3, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="alpha > 0"):
        mixup(x, y, 3, 0.0)


def _tiny_set(n: int = 24, classes: tuple[str, ...] = ("happy", "sad", "neutral")) -> FaceDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    labels = np.array(fer_labels(classes))[np.arange(n) % len(classes)]
    return FaceDataset(
        FaceSplit("train", images, labels, np.arange(n).astype(str)), classes, channels=1
    )


def test_the_loader_yields_soft_targets_with_mixup_and_labels_without():
    data = _tiny_set()
    plain = next(iter(FaceLoader(data, 8, shuffle=True, seed=0)))
    # alpha 1: a weight uniform on [0.5, 1], so that the partner shows in the pixels
    mixed = next(iter(FaceLoader(data, 8, shuffle=True, seed=0, mixup=1.0)))
    assert plain[1].dtype == torch.long and plain[1].shape == (8,)
    assert mixed[1].shape == (8, 3)
    # The same faces in the same order, each mixed with one partner: find the partner and the
    # weight by least squares on the pixels, then the target must be that weight on both labels.
    faces, labels = plain[0].flatten(1), plain[1]
    weights = set()
    for i, face in enumerate(mixed[0].flatten(1)):
        alone = torch.allclose(face, faces[i])  # paired with itself: the face as it was
        found = [(i, 1.0)] if alone else []
        for j in range(8):
            step = faces[i] - faces[j]
            if alone or j == i or step.norm() == 0:
                continue
            lam = float((face - faces[j]) @ step / (step @ step))
            if torch.allclose(face, lam * faces[i] + (1 - lam) * faces[j], atol=1e-5):
                found.append((j, lam))
                weights.add(round(lam, 4))
        assert len(found) == 1, f"face {i}: partners {found}"
        j, lam = found[0]
        expected = torch.zeros(3)
        expected[labels[i]] += lam
        expected[labels[j]] += 1 - lam
        torch.testing.assert_close(mixed[1][i], expected)
    assert len(weights) == 1 and 0.5 < weights.pop() < 0.99  # one weight per batch, own larger


def test_training_with_mixup_counts_the_larger_share_as_the_label():
    data = _tiny_set(32, ("happy", "sad"))
    loader = FaceLoader(data, 8, shuffle=True, seed=0, mixup=0.3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay: count by hand
    history = fit(
        model, loader, torch.nn.CrossEntropyLoss(), optimizer, 1, progress=False, log=lambda _: None
    )
    loader.generator.manual_seed(0)
    correct = 0
    with torch.no_grad():
        for x, targets in loader:
            correct += int((model(x).argmax(1) == targets.argmax(1)).sum())
    assert history["train_acc"][0] == pytest.approx(correct / 32)


def test_a_recipe_refuses_a_negative_alpha_and_mixup_with_dacls_objective():
    with pytest.raises(FerError, match="mixup must be 0"):
        replace(FAST, mixup=-0.1)
    with pytest.raises(FerError, match="cross_entropy objective"):
        replace(FAST, arch="dacl", objective="dacl", mixup=0.3)
    assert FAST.mixup == 0.0


def test_a_run_saved_before_mixup_existed_is_the_same_run_without_it():
    before = dataclasses.asdict(FAST)
    del before["mixup"]  # what a run saved before the field existed recorded
    saved = {"extra": {"settings": {"recipe": before, "seed": 0}}}
    assert settings_changed(saved, {"recipe": dataclasses.asdict(FAST), "seed": 0}) == []
    mixed = {"recipe": dataclasses.asdict(replace(FAST, mixup=0.3)), "seed": 0}
    assert settings_changed(saved, mixed) == ["mixup 0.0 -> 0.3"]
    # Any other difference still shows, the predated field beside it.
    wider = {"recipe": dataclasses.asdict(replace(FAST, width=48, mixup=0.3)), "seed": 1}
    assert settings_changed(saved, wider) == [
        f"width {FAST.width!r} -> 48",
        "mixup 0.0 -> 0.3",
        "seed 0 -> 1",
    ]


def test_a_run_that_recorded_no_recipe_differs_in_every_field():
    # Settings without a recipe are not a default-recipe run: nothing says what it trained.
    saved = {"extra": {"settings": {"seed": 0}}}
    wanted = dataclasses.asdict(FAST)
    assert settings_changed(saved, {"recipe": wanted, "seed": 0}) == [
        f"{field} None -> {value!r}" for field, value in wanted.items() if value is not None
    ]
    assert settings_changed({"extra": {}}, {"recipe": wanted}) == [
        "the settings (the file does not record them)"
    ]
