"""fer_helpers.augment: batched random affine warps, and shift-and-mirror crops."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from fer_helpers.augment import Augment, CropFlip


def test_no_change_when_every_range_is_zero():
    x = torch.rand(4, 1, 48, 48) * 2 - 1
    same = Augment(flip=0, rotation=0, scale=0, shift=0)(x)
    assert torch.allclose(same, x, atol=1e-5)


def test_flip_only_mirrors_left_right():
    x = torch.rand(4, 3, 48, 48)
    assert torch.allclose(Augment(flip=1, rotation=0, scale=0, shift=0)(x), x.flip(-1), atol=1e-5)


def test_each_image_gets_its_own_transform_reproducibly():
    x = torch.rand(1, 1, 48, 48).expand(8, 1, 48, 48).contiguous()
    augment = Augment()
    out = augment(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert not torch.allclose(out[0], out[1])  # same input, different warp
    again = augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert float(out.min()) >= float(x.min()) - 1e-5 and float(out.max()) <= float(x.max()) + 1e-5


def test_shift_moves_the_content_by_the_expected_pixels():
    x = torch.zeros(1, 1, 48, 48)
    x[0, 0, 20:28, 20:28] = 1
    augment = Augment(flip=0, rotation=0, scale=0, shift=0)
    theta = augment.random_affine(1)
    theta[0, 0, 2] = -2 * 4 / 48  # sample 4 px to the left: content moves 4 px right
    grid = torch.nn.functional.affine_grid(theta, [1, 1, 48, 48], align_corners=False)
    moved = torch.nn.functional.grid_sample(x, grid, align_corners=False)
    columns = torch.nonzero(moved[0, 0].sum(0) > 0.5).flatten()
    assert columns.min() == 24 and columns.max() == 31


def test_cropflip_without_shift_mirrors_all_or_nothing():
    x = torch.arange(2 * 1 * 6 * 6.0).reshape(2, 1, 6, 6)
    assert torch.equal(CropFlip(pad=0, flip=1.0)(x), x.flip(3))
    assert torch.equal(CropFlip(pad=0, flip=0.0)(x), x)


def test_cropflip_shows_a_window_of_the_mirror_padded_image():
    x = torch.rand(16, 2, 8, 8)
    out = CropFlip(pad=2, flip=0.5)(x, torch.Generator().manual_seed(3))
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    shifted = flipped = 0
    for image, result in zip(padded, out):
        windows = [
            (dy, dx, mirror)
            for dy in range(5)
            for dx in range(5)
            for mirror in (False, True)
            if torch.equal(
                result,
                image[:, dy : dy + 8, dx : dx + 8].flip(2)
                if mirror
                else image[:, dy : dy + 8, dx : dx + 8],
            )
        ]
        assert windows, "the output is no window of the padded image"
        shifted += (windows[0][0], windows[0][1]) != (2, 2)
        flipped += windows[0][2]
    assert shifted > 8 and 0 < flipped < 16  # most move; about half are mirrored


def test_cropflip_is_reproducible_with_a_seeded_generator():
    x = torch.rand(8, 1, 48, 48)
    first = CropFlip()(x, torch.Generator().manual_seed(0))
    again = CropFlip()(x, torch.Generator().manual_seed(0))
    other = CropFlip()(x, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == x.shape


def decompose(theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rotation (degrees), zoom, mirror (+1/-1) and shift of each 2x3 matrix, by hand.

    theta = [[m cos/z, -sin/z, tx], [m sin/z, cos/z, ty]]: its second column is a rotation
    over z, and its determinant m / z^2 gives the mirror's sign.
    """
    a, b = theta[:, :, 0], theta[:, :, 1]  # the columns
    return {
        "degrees": torch.rad2deg(torch.atan2(-b[:, 0], b[:, 1])),
        "zoom": 1 / b.norm(dim=1),
        "mirror": torch.sign(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]),
        "tx": theta[:, 0, 2],
        "ty": theta[:, 1, 2],
        "first_column_norm": a.norm(dim=1),
        "columns_dot": (a * b).sum(dim=1),
    }


def test_random_affine_draws_each_parameter_over_its_whole_range_and_no_further():
    augment = Augment(flip=0.3, rotation=12.0, scale=0.2, shift=0.1)
    parts = decompose(augment.random_affine(20_000, torch.Generator().manual_seed(0)))
    # A similarity: both columns have length 1/zoom and are perpendicular (no shear).
    assert torch.allclose(parts["first_column_norm"], 1 / parts["zoom"], atol=1e-5)
    assert parts["columns_dot"].abs().max() < 1e-5
    # Uniform over [-12, 12] degrees, [0.8, 1.2] zoom, [-0.2, 0.2] shift (2 x 0.1: affine_grid
    # runs from -1 to 1 across the image): 20,000 draws come within 0.2% of both ends.
    for key, low, high in (("degrees", -12, 12), ("zoom", 0.8, 1.2), ("tx", -0.2, 0.2)):
        values = parts[key]
        span = high - low
        assert low - 1e-5 <= values.min() < low + 0.002 * span, key
        assert high - 0.002 * span < values.max() <= high + 1e-5, key
        assert abs(values.mean() - (low + high) / 2) < 0.02 * span, key
    assert -0.2 - 1e-6 <= parts["ty"].min() < -0.199 and 0.199 < parts["ty"].max() <= 0.2 + 1e-6
    assert abs(parts["ty"].mean()) < 0.004  # its own draw, centred too
    mirrored = (parts["mirror"] < 0).float().mean()
    assert abs(mirrored - 0.3) < 0.015  # flip is the probability of a mirror
    assert set(parts["mirror"].tolist()) == {-1.0, 1.0}


def test_the_warp_follows_the_batchs_dtype():
    x = torch.rand(3, 1, 48, 48, dtype=torch.float64)
    out = Augment()(x, torch.Generator().manual_seed(2))
    assert out.dtype == torch.float64
    single = Augment()(x.float(), torch.Generator().manual_seed(2))
    assert torch.allclose(out.float(), single, atol=1e-5)  # the same warp, in more digits


def test_random_affine_is_the_documented_warp_of_five_uniform_draws():
    import math

    augment = Augment(flip=0.5, rotation=10.0, scale=0.1, shift=0.1)
    theta = augment.random_affine(6, torch.Generator().manual_seed(4))
    u = torch.rand(5, 6, generator=torch.Generator().manual_seed(4))  # the same draws, in order
    angle = (-10 + 20 * u[0]) * math.pi / 180  # -10..10 degrees
    zoom = 0.9 + 0.2 * u[1]  # 0.9x..1.1x
    mirror = torch.where(u[2] < 0.5, -1.0, 1.0)
    tx, ty = -0.2 + 0.4 * u[3], -0.2 + 0.4 * u[4]  # 0.1 of the width is 0.2 in grid units
    expected = torch.stack(
        [
            torch.stack([angle.cos() / zoom * mirror, -angle.sin() / zoom, tx], 1),
            torch.stack([angle.sin() / zoom * mirror, angle.cos() / zoom, ty], 1),
        ],
        1,
    )
    torch.testing.assert_close(theta, expected)
    assert (mirror == -1).any() and (mirror == 1).any()  # both kinds are checked


def test_the_warp_samples_bilinearly_and_repeats_the_border():
    x = torch.rand(5, 2, 12, 12)
    augment = Augment(flip=0.5, rotation=30.0, scale=0.3, shift=0.2)
    theta = augment.random_affine(5, torch.Generator().manual_seed(2))
    grid = F.affine_grid(theta, [5, 2, 12, 12], align_corners=False)
    expected = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = augment(x, torch.Generator().manual_seed(2))
    torch.testing.assert_close(out, expected)
    zeros = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert not torch.allclose(out, zeros)  # big enough warps reach past the edge
    assert augment(x.double(), torch.Generator().manual_seed(2)).dtype == torch.float64


def test_augmenting_a_batch_warns_of_nothing():
    # grid_sample and affine_grid warn once per call when align_corners is left
    # unset: a learner would see that warning for every batch of an epoch.
    faces = torch.rand(3, 1, 12, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Augment()(faces, torch.Generator().manual_seed(0))
        CropFlip()(faces, torch.Generator().manual_seed(0))


def test_both_augmentations_compute_on_the_batchs_device():
    # The "meta" device stands in for CUDA or MPS on a CPU-only machine: a
    # tensor left on the CPU next to it is refused, as it would be on a GPU.
    faces = torch.empty(4, 1, 12, 12, device="meta")
    assert Augment()(faces).device == faces.device
    assert CropFlip(pad=2)(faces).device == faces.device
    assert CropFlip(pad=2)(faces).shape == faces.shape
