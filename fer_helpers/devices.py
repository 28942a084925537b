"""Where and in what precision a model computes: CUDA, Apple's MPS or the CPU; float32 or bfloat16.

device = choose_device()             # cuda, else mps, else cpu
print(describe_device(device))
precision = resolve_precision("auto", device)   # "bf16" where the hardware computes in it
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import torch

from .errors import FerError

PRECISIONS = ("auto", "fp32", "bf16")


def choose_device(prefer: str | None = None) -> torch.device:
    """CUDA if there is a usable NVIDIA GPU, else Apple's MPS, else the CPU.

    prefer ("cpu", "cuda", "cuda:1", "mps") forces one and raises FerError when
    this machine cannot use it.
    """
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),  # not torch.cuda: the handout's slip
        "cpu": True,
    }
    if prefer is None:
        return torch.device(next(kind for kind, ok in available.items() if ok))
    kind = prefer.split(":")[0].strip().lower()
    if kind not in available:
        raise FerError(f"unknown device {prefer!r}: expected 'cuda', 'mps', 'cpu' or None")
    if not available[kind]:
        usable = ", ".join(k for k, ok in available.items() if ok)
        raise FerError(f"device {prefer!r} is not available on this machine (usable: {usable})")
    return torch.device(prefer.strip().lower())


def describe_device(device: str | torch.device) -> str:
    """One line naming the device, with a hint when an NVIDIA GPU sits unused."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    if device.type == "cpu" and shutil.which("nvidia-smi") and not torch.cuda.is_available():
        return (
            "cpu (an NVIDIA GPU seems present but PyTorch cannot use it:"
            " this torch build lacks CUDA, or the driver is too old)"
        )
    return device.type


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """ "fp32" or "bf16": what precision="auto" means on this device.

    bfloat16 halves the bytes moved and, on hardware that computes in it, about
    doubles the speed (2.0x for SI100FaceNet on this course's 2-core test machine).
    "auto" takes it on CUDA GPUs that support it and on CPUs with native
    bfloat16 instructions (AVX512-BF16 or AMX); elsewhere, where bfloat16 is
    emulated and slower, and on Apple's MPS, it stays with float32.
    """
    if precision not in PRECISIONS:
        raise FerError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if kind == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def processor_name() -> str:
    """This machine's processor, e.g. 'AMD EPYC 7B13', for the record of a measurement."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # macOS, Windows: no /proc
        pass
    return platform.processor() or platform.machine() or "unknown processor"


def cpu_has_bf16() -> bool:
    """True if this CPU has bfloat16 instructions (Linux /proc/cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # macOS, Windows: no /proc; stay with float32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: str | torch.device, precision: str) -> torch.autocast:
    """The context that runs a forward pass in `precision` ("fp32" or "bf16")."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16")
