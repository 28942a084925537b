"""DACL: the sparse center loss on hand-computed cases, the attention net, the checkers.

References are worked by hand or written as plain loops, independently of fer_helpers.dacl.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_checker_contract

from fer_helpers import paths
from fer_helpers.dacl import ablation_table, train_variant, training_speed, variant_recipe
from fer_helpers.data import load_synthetic
from fer_helpers.exercises import ExerciseError
from fer_helpers.exercises.dacl import check_attention_heads, check_sparse_center_loss
from fer_helpers.labels import EMOTIONS
from fer_helpers.losses import LAMBDA, DACLLoss, SparseCenterLoss, sparse_center_loss
from fer_helpers.models import DACLNet, attention_from_heads
from fer_helpers.recipes import CENTRE_LR, recipe_loaders
from fer_helpers.train import fit

# Two images, three features, three classes.
X = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
C = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
Y = torch.tensor([2, 1])
A = torch.tensor([[0.5, 1.0, 0.0], [1.0, 0.5, 0.25]])


def test_sparse_center_loss_on_a_hand_computed_case():
    # image 0, class 2: x - c = (-1, 2, 2) -> 0.5*1 + 1*4 + 0*4 = 4.5
    # image 1, class 1: x - c = (-1, 0, -1) -> 1*1 + 0.5*0 + 0.25*1 = 1.25
    # L_SC = (4.5 + 1.25) / (2 * 2)
    assert sparse_center_loss(X, C, Y, A).item() == pytest.approx(1.4375)


def test_all_weights_one_is_plain_center_loss():
    generator = torch.Generator().manual_seed(0)
    x, c = torch.randn(6, 5, generator=generator), torch.randn(4, 5, generator=generator)
    y = torch.tensor([0, 3, 3, 1, 0, 2])
    by_loop = sum(((x[i] - c[y[i]]) ** 2).sum().item() for i in range(6)) / (2 * 6)
    assert sparse_center_loss(x, c, y, torch.ones(6, 5)).item() == pytest.approx(by_loop)
    assert sparse_center_loss(x, c, y).item() == pytest.approx(by_loop)
    # hand case with every weight 1: (1 + 4 + 4) + (1 + 0 + 1) = 11, / 4
    assert sparse_center_loss(X, C, Y).item() == pytest.approx(11 / 4)


def test_gradients_reach_the_centres_of_the_classes_in_the_batch():
    loss_fn = SparseCenterLoss(num_classes=3, feat_dim=3)
    with torch.no_grad():
        loss_fn.centres.copy_(C)
    loss_fn(X, Y, A).backward()
    # d L / d c_k = -(1/m) sum over images of class k of a_i * (x_i - c_k)
    expected = torch.zeros(3, 3)
    expected[2] = -(A[0] * (X[0] - C[2])) / 2
    expected[1] = -(A[1] * (X[1] - C[1])) / 2
    torch.testing.assert_close(loss_fn.centres.grad, expected)
    assert torch.all(loss_fn.centres.grad[0] == 0)  # class 0 is not in the batch


def test_centres_are_learned_parameters_of_the_right_shape():
    loss_fn = SparseCenterLoss(num_classes=7, feat_dim=512)
    names = dict(loss_fn.named_parameters())
    assert list(names) == ["centres"] and names["centres"].shape == (7, 512)
    with pytest.raises(Exception, match="expect"):
        loss_fn(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_lambda_zero_is_pure_cross_entropy_and_default_adds_lambda_times_l_sc():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, generator=generator, requires_grad=True)
    attention = A.clone().requires_grad_(True)
    loss_fn = DACLLoss(num_classes=3, feat_dim=3, lam=0.0)
    total, ce, sc = loss_fn(logits, X, attention, Y)
    assert total.item() == pytest.approx(F.cross_entropy(logits, Y).item())
    assert total.item() == pytest.approx(ce.item())
    total.backward()
    assert attention.grad is None and loss_fn.center_loss.centres.grad is None

    dacl = DACLLoss(num_classes=3, feat_dim=3)
    assert dacl.lam == LAMBDA == 0.01
    total, ce, sc = dacl(logits, X, A, Y)
    centres = dacl.center_loss.centres.detach()
    assert sc.item() == pytest.approx(sparse_center_loss(X, centres, Y, A).item())
    assert total.item() == pytest.approx(ce.item() + 0.01 * sc.item())


def test_plain_mode_ignores_the_attention():
    plain = DACLLoss(num_classes=3, feat_dim=3, plain=True)
    logits = torch.zeros(2, 3)
    _, _, with_a = plain(logits, X, A, Y)
    _, _, with_ones = plain(logits, X, torch.ones_like(A), Y)
    assert with_a.item() == pytest.approx(with_ones.item())


def test_attention_heads_take_a_softmax_per_pair():
    scores = torch.tensor([[0.0, 0.0, 2.0, 0.0, 0.0, 3.0]])
    expected = [math.exp(s1) / (math.exp(s0) + math.exp(s1)) for s0, s1 in [(0, 0), (2, 0), (0, 3)]]
    torch.testing.assert_close(attention_from_heads(scores, 3), torch.tensor([expected]))


def test_model_outputs_and_attention_range():
    torch.manual_seed(0)
    model = DACLNet(num_classes=7)
    assert model.map_shape == (1, 512, 3, 3)  # 48x48 input through the adapted stem
    widths = [
        layer.out_features
        for layer in model.attention.encoder
        if hasattr(layer, "weight") and layer.weight.ndim == 2
    ]
    assert widths == [3584, 512, 64]
    assert model.attention.heads.out_features == 2 * 512
    logits, features, attention = model.eval()(torch.rand(3, 3, 48, 48) * 2 - 1)
    assert logits.shape == (3, 7) and features.shape == (3, 512) and attention.shape == (3, 512)
    assert torch.all((attention > 0) & (attention < 1))
    assert torch.all(features >= 0)  # pooled after ReLU


def test_training_speed_trains_the_variant_through_fit_on_faces_the_model_takes(monkeypatch):
    from fer_helpers import train

    calls = []

    def spy(model, loader, loss_fn, optimizer, epochs, **kwargs):
        calls.append(
            (len(loader), [(type(o).__name__, o.param_groups[0]["lr"]) for o in optimizer])
        )
        return fit(model, loader, loss_fn, optimizer, epochs, **kwargs)

    monkeypatch.setattr(train, "fit", spy)
    torch.manual_seed(0)
    model = DACLNet(num_classes=3, in_channels=1, input_size=32)  # neither 3 channels nor 48
    loss_fn = DACLLoss(num_classes=3)
    weights, centres = (
        model.fc.weight.detach().clone(),
        loss_fn.center_loss.centres.detach().clone(),
    )
    batches = []
    model.register_forward_pre_hook(lambda _, args: batches.append(tuple(args[0].shape)))
    speed = training_speed(model, loss_fn, batch_size=4, batches=2)
    assert math.isfinite(speed) and speed > 0
    # one untimed warm-up step, then the timed ones, each by fit with the model's SGD (the
    # "dacl" variant's learning rate) and the class centres' own
    optimizers = [("SGD", variant_recipe("dacl").lr), ("SGD", CENTRE_LR)]
    assert calls == [(1, optimizers), (2, optimizers)]
    assert batches == [(4, 1, 32, 32)] * 3
    assert not torch.equal(model.fc.weight.detach(), weights)
    assert not torch.equal(loss_fn.center_loss.centres.detach(), centres)  # centres learn too


def test_training_moves_centres_towards_their_class_and_lambda_zero_leaves_them():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 48, 48) * 2 - 1
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    for lam, moves in ((0.01, True), (0.0, False)):
        model = DACLNet(num_classes=2)
        loss_fn = DACLLoss(num_classes=2, lam=lam)
        before = loss_fn.center_loss.centres.detach().clone()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # only the centres move
        centre_optimizer = torch.optim.SGD(loss_fn.parameters(), lr=0.5)
        history = fit(
            model, [(x, y)], loss_fn, [optimizer, centre_optimizer], 1, device="cpu", progress=False
        )
        after = loss_fn.center_loss.centres.detach()
        assert len(history["train_loss"]) == 1 and len(history["train_sc"]) == 1
        assert torch.any(after != before) == moves
        if moves:  # eval-free check: with lr 0 the features are fixed; centres come closer
            model.train()
            with torch.no_grad():
                _, features, attention = model(x)
            assert sparse_center_loss(features, after, y, attention) < sparse_center_loss(
                features, before, y, attention
            )


def test_the_centres_learn_from_l_sc_alone_and_the_network_from_the_total():
    # DACL's code divides the centres' gradient by lambda; DACLLoss does it in its graph.
    torch.manual_seed(0)
    features = torch.randn(4, 5, requires_grad=True)
    attention = torch.rand(4, 5)
    labels = torch.tensor([0, 2, 1, 2])
    logits = torch.randn(4, 3, requires_grad=True)
    loss_fn = DACLLoss(num_classes=3, feat_dim=5, lam=0.25)
    total, ce, sc = loss_fn(logits, features, attention, labels)
    total.backward()
    centres = loss_fn.center_loss.centres.detach().clone().requires_grad_(True)
    by_hand = F.cross_entropy(logits.detach(), labels)
    x = features.detach().clone().requires_grad_(True)
    reference = by_hand + 0.25 * sparse_center_loss(x, centres, labels, attention)
    reference.backward()
    torch.testing.assert_close(total, reference)
    torch.testing.assert_close(features.grad, x.grad)  # the network: d(CE + lam * L_SC)
    torch.testing.assert_close(loss_fn.center_loss.centres.grad, centres.grad / 0.25)  # d L_SC


def test_a_variant_sees_at_most_per_class_faces_of_each_class():
    data = load_synthetic(tiny=True)
    recipe = variant_recipe("dacl", epochs=1, per_class=3, batch_size=10, start_from=None)
    loader, _ = recipe_loaders(recipe, data, classes=EMOTIONS)
    counts = np.bincount(loader.dataset.targets.numpy(), minlength=7)
    expected = np.minimum(data["train"].class_counts(), 3)
    assert counts.tolist() == expected.tolist()
    assert counts.sum() == 21
    # batches of 10: 10, 10 and a last one of a single face, dropped (batch norm needs two)
    assert [len(y) for _, y in loader] == [10, 10]
    loader, _ = recipe_loaders(replace(recipe, batch_size=8), data, classes=EMOTIONS)
    assert [len(y) for _, y in loader] == [8, 8, 5]  # a short last batch is kept


def test_ablation_table_balanced_accuracy():
    cm = np.array([[8, 2], [5, 5]])
    table = ablation_table({"softmax": cm, "dacl": np.diag([3, 4])})
    assert table.loc["softmax", "balanced accuracy"] == pytest.approx((0.8 + 0.5) / 2)
    assert table.loc["softmax", "accuracy"] == pytest.approx(13 / 20)
    assert table.loc["dacl", "balanced accuracy"] == pytest.approx(1.0)
    assert table.loc["dacl", "Report 2 (bal. acc.)"] == 0.61


def test_train_variant_saves_and_reloads(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "WEIGHTS_DIR", tmp_path)
    data = load_synthetic(tiny=True)
    model, info = train_variant(data, "dacl", 1, per_class=2, start_from=None, progress=False)
    assert (tmp_path / "dacl_dacl.synthetic-tiny.pth").exists()
    again, info2 = train_variant(data, "dacl", 1, per_class=2, start_from=None, progress=False)
    x = torch.zeros(2, 1, 48, 48, device=next(model.parameters()).device)  # CUDA, MPS or CPU
    torch.testing.assert_close(model.eval()(x)[0], again(x)[0])
    np.testing.assert_equal(info2["history"], info["history"])
    assert info["extra"]["recipe"]["objective"] == "dacl" and "train_sc" in info["history"]


# --- the exercise checkers ---------------------------------------------------------------------


def loss_loop(x, c, y, a):
    total = sum((a[i] * (x[i] - c[y[i]]) ** 2).sum() for i in range(len(y)))
    return total / (2 * len(y))


def heads_loop(scores):
    b, d = scores.shape[0], scores.shape[1] // 2
    out = torch.empty(b, d)
    for i in range(b):
        for j in range(d):
            s0, s1 = scores[i, 2 * j], scores[i, 2 * j + 1]
            out[i, j] = torch.exp(s1) / (torch.exp(s0) + torch.exp(s1))
    return out


@pytest.mark.parametrize(
    ("checker", "right", "checks"),
    [(check_sparse_center_loss, loss_loop, 2), (check_attention_heads, heads_loop, 2)],
)
def test_checker_passes_a_right_answer_and_lets_a_stub_through(checker, right, checks, capsys):
    assert_checker_contract(checker, right, checks, capsys)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x, c, y, a: (a * (x - c[y]) ** 2).sum() / len(y), "divided by m"),
        (lambda x, c, y, a: ((x - c[y]) ** 2).sum() / (2 * len(y)), "left out the attention"),
        (lambda x, c, y, a: (a * (x - c[: len(y)]) ** 2).sum() / (2 * len(y)), "ITS class"),
        (lambda x, c, y, a: ((a * (x - c[y])) ** 2).sum() / (2 * len(y)), "SQUARED"),
        (lambda x, c, y, a: (a * (x - c[y]) ** 2).mean() / 2, "not by the number of features"),
        (lambda x, c, y, a: (a * (x - c[y]) ** 2).sum(dim=1) / 2, "one number"),
        (
            lambda x, c, y, a: ((a * (x - c[y]) ** 2).sum() / (2 * len(y))).item(),
            "cut the gradient",
        ),
    ],
)
def test_loss_checker_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_sparse_center_loss(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda s: s.reshape(len(s), -1, 2).softmax(-1)[..., 0], "index 1"),
        (lambda s: s.reshape(len(s), 2, -1).softmax(1)[:, 1], "not \\(batch, 2, d\\)"),
        (lambda s: s.reshape(len(s), -1, 2).softmax(1)[..., 1], "not across the features"),
        (lambda s: torch.sigmoid(s[:, 1::2]), "alone"),
        (lambda s: s.softmax(-1), "reshape to"),
    ],
)
def test_heads_checker_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_attention_heads(wrong)


def test_center_loss_objectives_are_refused_data_parallel(tmp_path, monkeypatch):
    from fer_helpers import recipes
    from fer_helpers.errors import FerError

    monkeypatch.setattr(recipes, "world", lambda: (0, 2))  # as if under torchrun with 2
    data = load_synthetic(tiny=True)
    with pytest.raises(FerError, match="objective 'dacl' learns class centres"):
        recipe = variant_recipe("dacl", 1, 2, start_from=None)
        recipes.train_with_recipe(recipe, data, tmp_path / "x.pth")


def test_attention_similarity_finds_a_class_pattern_and_not_noise():
    from fer_helpers.dacl import attention_similarity
    from fer_helpers.errors import FerError

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    pattern = rng.normal(size=(3, 32))  # one pattern per class, plus noise per face
    weights = pattern[labels] + 0.5 * rng.normal(size=(60, 32))
    found = attention_similarity(weights, labels, permutations=99)
    # by hand: centred rows, their correlations, same-class pairs without the diagonal
    centred = weights - weights.mean(axis=0)
    corr = np.corrcoef(centred)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    other = labels[:, None] != labels[None, :]
    assert found["within"] == pytest.approx(corr[same].mean())
    assert found["between"] == pytest.approx(corr[other].mean())
    assert found["difference"] > 0.5 and found["p"] == pytest.approx(1 / 100)
    noise = attention_similarity(rng.normal(size=(60, 32)), labels, permutations=99)
    assert abs(noise["difference"]) < 0.1 and noise["p"] > 0.05
    with pytest.raises(FerError, match="at least 2 classes"):
        attention_similarity(weights, np.zeros(60))


def test_every_variant_starts_from_the_shipped_resnet18():
    from fer_helpers.dacl import DACL_BACKBONE, VARIANTS
    from fer_helpers.models import DACLNet
    from fer_helpers.pretrained import SHIPPED, load_backbone, load_pretrained

    assert DACL_BACKBONE in SHIPPED
    assert {variant_recipe(v).start_from for v in VARIANTS} == {DACL_BACKBONE}
    backbone, info = load_pretrained(DACL_BACKBONE)
    assert info["arch"] == "resnet18" and info["class_names"] == list(EMOTIONS)
    model = DACLNet(num_classes=7, in_channels=variant_recipe("dacl").channels)
    fresh = load_backbone(model, DACL_BACKBONE)
    assert fresh and all(name.startswith(("fc.", "attention.")) for name in fresh)
    shipped = backbone.state_dict()
    for name, tensor in model.state_dict().items():  # the backbone, tensor for tensor
        if name.startswith("backbone."):
            torch.testing.assert_close(tensor, shipped[name].to(tensor.dtype))
