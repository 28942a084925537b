"""Checkers for notebook 14: what a convolution costs, and what a conv block learns.

- conv_flops(c_in, c_out, kernel, h_out, w_out) -> floating-point operations of one
  Conv2d on one image (a multiply-add counts 2, the bias adds are left out)
- conv_block_parameters(c_in, c_out) -> parameters of Report 3's conv block:
  Conv2d 3x3 with bias, then BatchNorm2d

The references are PyTorch's own: torch's FlopCounterMode on a real Conv2d, and
the parameter count of a real block. A wrong answer gets one sentence naming the
usual mistake. A NotDoneYet from an unfinished exercise passes through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral

import torch

from ..models import conv_block
from . import ExerciseError, call, checker, passed
from .references import conv_flops_reference

FLOP_CASES = ((1, 64, 3, 48, 48), (64, 128, 3, 24, 24), (3, 8, 5, 10, 12), (16, 4, 1, 7, 7))
BLOCK_CASES = ((1, 128), (128, 128), (256, 512), (3, 5))


@checker
def check_conv_flops(conv_flops: Callable[[int, int, int, int, int], int]) -> None:
    """Check conv_flops(c_in, c_out, kernel, h_out, w_out) on several layers."""
    for case in FLOP_CASES:
        c_in, c_out, kernel, h_out, w_out = case
        got = _whole(call(conv_flops, *case, name="conv_flops"), "conv_flops")
        expected = conv_flops_reference(*case)
        if got == expected:
            continue
        macs = expected // 2
        hint = "count every output value, every input channel and every kernel position"
        if got == macs:
            hint = "that is the number of multiply-adds: each is 2 operations"
        elif got == 2 * c_in * kernel * kernel * h_out * w_out:
            hint = "each of the c_out filters makes its own output map: multiply by c_out"
        elif got == 2 * c_in * c_out * kernel * h_out * w_out:
            hint = "a k x k kernel has k * k positions: kernel squared"
        elif got == 2 * c_in * c_out * kernel * kernel:
            hint = "one filter position gives one output value: multiply by h_out * w_out"
        raise ExerciseError(
            f"conv_flops{case} should be {expected:,} ({macs:,} multiply-adds), got {got:,}: {hint}"
        )
    passed("conv_flops", len(FLOP_CASES))


@checker
def check_conv_block_parameters(conv_block_parameters: Callable[[int, int], int]) -> None:
    """Check conv_block_parameters(c_in, c_out) for Report 3's conv block."""
    for c_in, c_out in BLOCK_CASES:
        got = _whole(
            call(conv_block_parameters, c_in, c_out, name="conv_block_parameters"),
            "conv_block_parameters",
        )
        expected = sum(p.numel() for p in conv_block(c_in, c_out).parameters())
        if got == expected:
            continue
        conv = 9 * c_in * c_out + c_out
        hint = "the convolution has 3*3*c_in*c_out weights and c_out biases; add batch norm's"
        if got == conv:
            hint = "batch norm learns too: a scale and a shift per channel (2 * c_out)"
        elif got == conv + 4 * c_out:
            hint = (
                "batch norm's running mean and variance are buffers, not parameters: "
                "no gradient changes them"
            )
        elif got == conv + c_out:
            hint = (
                "c_out short: the convolution has a bias per output channel, and batch norm "
                "a scale and a shift per channel"
            )
        raise ExerciseError(
            f"conv_block_parameters({c_in}, {c_out}) should be {expected:,}, got {got:,}: {hint}"
        )
    passed("conv_block_parameters", len(BLOCK_CASES))


def _whole(value: object, name: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, Integral):
        raise ExerciseError(f"{name} returned {value!r}: return a whole number")
    return int(value)
