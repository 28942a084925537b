"""Data-parallel training across processes: `torchrun --nproc_per_node=N -m fer_helpers train`.

torchrun starts N copies of the command and tells each its RANK, its
LOCAL_RANK and the WORLD_SIZE through environment variables. Every copy
builds the same model from the same seed, trains on its own 1/N of each
epoch's batches (FaceLoader(rank=, world_size=)), and DistributedDataParallel
averages the gradients over all copies after every backward pass, so every
copy takes the same optimizer step and holds the same weights. The processes
talk through "gloo" on CPUs and "nccl" between NVIDIA GPUs; on several
machines, give torchrun --nnodes and --rdzv-endpoint as its docs say.

Outside torchrun every function here is a no-op for a single process.
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.distributed as dist
from torch import nn

from .errors import FerError


def launched_by_torchrun() -> bool:
    """True in a process that torchrun started (it sets WORLD_SIZE and RANK)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device_kind: str) -> torch.device | None:
    """Join torchrun's process group; returns this process's device (None outside torchrun).

    gloo for the CPU; nccl for CUDA, one GPU per process (LOCAL_RANK picks it).
    """
    if not launched_by_torchrun():
        return None
    if device_kind == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return torch.device("cuda", local)
    if device_kind == "mps":
        raise FerError("data-parallel training runs on CPUs (gloo) or NVIDIA GPUs (nccl), not MPS")
    dist.init_process_group("gloo")
    return torch.device("cpu")


def stop() -> None:
    """Leave the process group (after the last checkpoint is written)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """(this process's rank, number of processes); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True in the process that logs and saves: rank 0, or the only one."""
    return world()[0] == 0


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (batch norm's running statistics) to every process.

    DDP averages gradients, not buffers: each process updates its running means
    with its own batches, so after an epoch they differ a little.
    """
    if world()[1] == 1:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def fingerprint(model: nn.Module) -> str:
    """A short hash of every parameter and buffer: equal weights, equal fingerprints."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def fingerprints_of_all(model: nn.Module) -> list[str]:
    """Every process's fingerprint of its model, in rank order (on every process)."""
    mine = fingerprint(model)
    if world()[1] == 1:
        return [mine]
    gathered: list[str | None] = [None] * world()[1]
    dist.all_gather_object(gathered, mine)
    return [str(g) for g in gathered]
