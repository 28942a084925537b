"""Keep freed tensor memory in the process, so that training steps do not page-fault.

On Linux, glibc's malloc hands a large block (over 32 MB at most) straight to the
kernel and gives it back as soon as it is freed. A training step at batch 64
allocates several blocks that large: conv1's output alone is 64 x 64 x 48 x 48
floats, 37.7 MB, and so are its batch norm's output and both their gradients.
The next step asks for them again, and the kernel must map and zero every 4 KB
page anew on first touch. Measured on the 2-core course machine, 240 steps of the
fast recipe on FER2013 (`python -m fer_helpers bench` has the full comparison):

    by default          about 42,000 page faults per step, 133-145 images/s
    keep_freed_memory   almost none after the first steps, 156-184 images/s,
                        80 MB more resident memory

keep_freed_memory() raises malloc's two thresholds to 1 GiB (mallopt), so that
such blocks come from, and go back to, the process's own heap. train.fit,
validate and predict call it.
Only glibc has mallopt: on macOS, Windows or musl it does nothing; CUDA and MPS
memory has PyTorch's own caching allocator anyway. FER_KEEP_FREED_MEMORY=0 in the
environment switches it off, to measure the difference.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc's malloc.h: free memory kept at the heap's top before trimming
M_MMAP_THRESHOLD = -3  # blocks at least this large are mmap-ed one by one
KEEP_BYTES = 1 << 30
SWITCH = "FER_KEEP_FREED_MEMORY"

_applied: bool | None = None  # once per process: None until the first call


def keep_freed_memory(libc: object | None = None) -> bool:
    """Let malloc keep blocks up to 1 GiB after they are freed; True if it took effect.

    Safe to call many times and on any system (a no-op where glibc is absent).
    libc: for tests, an object with a mallopt(param, value) -> int method.
    """
    global _applied
    if _applied is not None and libc is None:
        return _applied
    applied = False
    if os.environ.get(SWITCH, "1") != "0":
        lib = libc if libc is not None else _glibc()
        if lib is not None:
            applied = bool(lib.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(
                lib.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)
            )
    if libc is None:
        _applied = applied
    return applied


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(lib, "mallopt"):
        return None
    lib.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    lib.mallopt.restype = ctypes.c_int
    return lib
