"""Data-parallel training: two torchrun processes end with the same weights as the saved ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

if not torch.distributed.is_available():  # some builds (e.g. older macOS wheels) lack it
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

from fer_helpers import distributed  # noqa: E402  (after the skip: it imports torch.distributed)
from fer_helpers.checkpoints import load_model  # noqa: E402
from fer_helpers.models import SI100FaceNet  # noqa: E402

TIMEOUT = 300  # seconds: two processes start, import torch and train one tiny epoch


@pytest.fixture
def single_process(monkeypatch):
    """No torchrun variables: the helpers must act as for one process."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_fingerprint_changes_with_one_weight_and_only_then():
    torch.manual_seed(0)
    model = SI100FaceNet(hidden=16, input_size=16)
    twin = SI100FaceNet(hidden=16, input_size=16)
    twin.load_state_dict(model.state_dict())
    before = distributed.fingerprint(model)
    assert distributed.fingerprint(twin) == before  # equal weights, equal fingerprints
    with torch.no_grad():
        twin.fc2.bias[0] += 1e-6
    assert distributed.fingerprint(twin) != before
    assert distributed.fingerprint(model) == before  # and it does not change the model
    # The memory layout does not matter, only the numbers.
    assert distributed.fingerprint(model.to(memory_format=torch.channels_last)) == before


def test_a_single_process_is_its_own_world(single_process):
    assert distributed.start("cpu") is None
    assert distributed.world() == (0, 1) and distributed.is_main()
    model = SI100FaceNet(hidden=16, input_size=16)
    assert distributed.fingerprints_of_all(model) == [distributed.fingerprint(model)]
    distributed.sync_buffers(model)  # no-ops without a process group
    distributed.stop()


def test_two_processes_train_one_model(tmp_path):
    out = tmp_path / "ddp.pth"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "fer_helpers",
        "train",
        "--data",
        "synthetic",
        "--epochs",
        "1",
        "--precision",
        "fp32",
        # 24 tiny training faces, 12 per process: 2 batches of 8 each (one process: 3)
        "--batch-size",
        "8",
        "--out",
        str(out),
    ]
    env = dict(os.environ, FER_TINY="1", OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    log = result.stdout

    found = re.findall(r"weights of the 2 processes, by rank: (\w+) (\w+)", log)
    assert len(found) == 1, log  # printed by rank 0 only
    first, second = found[0]
    assert first == second
    model, info = load_model(out)
    assert distributed.fingerprint(model) == first
    assert info["extra"]["processes"] == 2
    assert [line for line in log.splitlines() if line.startswith("saved ")] == [f"saved {out}"]

    # Each process trained its half: 2 batches an epoch, logged once (rank 0 only).
    assert "2 data-parallel processes" in log
    assert re.findall(r"Epoch: 1/1, Batch: \d+, (\d+)/(\d+)", log) == [("1", "2"), ("2", "2")]
