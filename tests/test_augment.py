"""fer_helpers.augment: batched random affine warps, shift-and-mirror crops, random erasing."""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from fer_helpers.augment import Augment, Chain, CropFlip, Erase
from fer_helpers.recipes import AUGMENTATIONS


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


def _erased_boxes(before: torch.Tensor, after: torch.Tensor) -> list[tuple | None]:
    """(top, left, height, width) of each face's erased pixels, checked to be one rectangle
    painted 0 in every channel with nothing else changed; None where nothing was erased."""
    boxes = []
    for x, y in zip(before, after, strict=True):
        changed = y != x
        assert torch.equal(changed, changed[:1].expand_as(changed))  # the same in each channel
        assert torch.all(y[changed] == 0)
        rows = torch.nonzero(changed[0].any(1)).flatten()
        cols = torch.nonzero(changed[0].any(0)).flatten()
        if len(rows) == 0:
            boxes.append(None)
            continue
        top, left = int(rows[0]), int(cols[0])
        height, width = int(rows[-1]) - top + 1, int(cols[-1]) - left + 1
        assert int(changed[0].sum()) == height * width  # a full rectangle, no holes
        boxes.append((top, left, height, width))
    return boxes


def test_erase_paints_one_rectangle_within_the_bounds():
    x = torch.rand(400, 2, 48, 40) + 0.5  # no pixel is already 0; not square
    boxes = _erased_boxes(x, Erase(p=1.0)(x, torch.Generator().manual_seed(0)))
    assert all(box is not None for box in boxes)
    # Each side is rounded to whole pixels: h * w moves from the drawn area A by at most
    # (h + w) / 2 + 1/4, and h + w <= sqrt(A) * (sqrt(3.3) + 1 / sqrt(3.3)).
    low, high = 0.02 * 48 * 40, 0.25 * 48 * 40
    spread = math.sqrt(3.3) + 1 / math.sqrt(3.3)
    areas, log_ratios, places = [], [], []
    for top, left, height, width in boxes:
        assert top >= 0 and top + height <= 48 and left >= 0 and left + width <= 40
        assert low - math.sqrt(low) * spread / 2 <= height * width
        assert height * width <= high + math.sqrt(high) * spread / 2 + 0.25
        assert 0.3 * (width - 0.5) <= height + 0.5 and height - 0.5 <= 3.3 * (width + 0.5)
        areas.append(height * width / (48 * 40))
        log_ratios.append(math.log(height / width))
        if height < 48:
            places.append(top / (48 - height))
    # Area uniform on [0.02, 0.25]: mean 0.135, sd 0.066; ratio log-uniform on [0.3, 3.3].
    assert abs(sum(areas) / len(areas) - 0.135) < 4 * 0.066 / 20 + 0.005
    mean_log = (math.log(0.3) + math.log(3.3)) / 2
    assert abs(sum(log_ratios) / len(log_ratios) - mean_log) < 4 * 0.69 / 20 + 0.03
    # The place is uniform over every position where it fits: its mean is the middle.
    assert abs(sum(places) / len(places) - 0.5) < 4 * 0.29 / math.sqrt(len(places))


def test_erase_chooses_faces_with_probability_p_and_p_0_changes_nothing():
    x = torch.rand(2000, 1, 12, 12) + 0.5
    assert torch.equal(Erase(p=0.0)(x), x)
    boxes = _erased_boxes(x, Erase(p=0.3)(x, torch.Generator().manual_seed(1)))
    share = sum(box is not None for box in boxes) / len(boxes)
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 2000)


def test_erase_is_reproducible_and_the_chain_applies_its_steps_in_order():
    x = torch.rand(8, 1, 16, 16) + 0.5
    erase = Erase(p=1.0, value=-1.0)
    first = erase(x, torch.Generator().manual_seed(5))
    assert torch.equal(first, erase(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, erase(x, torch.Generator().manual_seed(6)))
    assert set((first[first != x]).tolist()) == {-1.0}
    # Mirror all, then erase: the erased rectangle is not mirrored back.
    chained = Chain((CropFlip(pad=0, flip=1.0), erase))(x, torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)
    by_hand = erase(CropFlip(pad=0, flip=1.0)(x, generator), generator)
    assert torch.equal(chained, by_hand)
    assert not torch.equal(chained, erase(x, torch.Generator().manual_seed(5)).flip(3))


def test_the_cropflip_erase_augmentation_shifts_mirrors_then_erases():
    augment = AUGMENTATIONS["cropflip-erase"]()
    assert isinstance(augment, Chain)
    assert [type(step) for step in augment.steps] == [CropFlip, Erase]
    assert augment.steps[0] == CropFlip() and augment.steps[1] == Erase()
