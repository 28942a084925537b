"""allocator.keep_freed_memory: the right mallopt calls, and fewer page faults under glibc."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from fer_helpers import allocator


class FakeLibc:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answer


def test_it_raises_both_malloc_thresholds_to_one_gibibyte() -> None:
    libc = FakeLibc()
    assert allocator.keep_freed_memory(libc) is True
    assert libc.calls == [(-3, 1 << 30), (-1, 1 << 30)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


def test_a_refused_mallopt_is_reported_as_not_applied() -> None:
    assert allocator.keep_freed_memory(FakeLibc(answer=0)) is False


def test_the_environment_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(allocator.SWITCH, "0")
    libc = FakeLibc()
    assert allocator.keep_freed_memory(libc) is False
    assert libc.calls == []


def test_without_glibc_there_is_nothing_to_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert allocator._glibc() is None


FAULTS = """
import json, resource, sys, torch
from torch import nn
from fer_helpers.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.manual_seed(0)
# The first block of SI100FaceNet at batch 64: conv1's output alone is 37.7 MB.
block = nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64), nn.MaxPool2d(2))
x = torch.randn(64, 1, 48, 48)
def step():
    block.zero_grad(set_to_none=True)
    block(x).square().mean().backward()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"applied": applied, "faults": after - before}))
"""


def _page_faults(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != allocator.SWITCH}
    run = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(allocator._glibc() is None, reason="mallopt is glibc's (Linux) only")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    kept, default = _page_faults("keep"), _page_faults("default")
    assert kept["applied"] is True
    # By default every step maps its large blocks afresh: thousands of page faults
    # (fewer with huge pages); kept, the steps after the first few reuse the heap.
    assert default["faults"] >= 100
    assert kept["faults"] * 5 < default["faults"]
