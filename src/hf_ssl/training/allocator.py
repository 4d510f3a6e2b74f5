"""glibc's malloc, set up for training on a CPU: freed tensor memory kept for the next step instead of handed back.

PyTorch's CPU tensors come from malloc. glibc serves a large request (above its mmap threshold, which starts at
128 KiB and adapts up to 32 MiB) with a fresh `mmap` and gives it back with `munmap` when the tensor is freed, and it
trims freed memory at the top of its heap back to the kernel. A training step frees and allocates the same
activations and gradients at every step, so each step pays the kernel to map and zero those pages anew, one page
fault per 4 KiB. Fixing the mmap threshold at its maximum, trimming only beyond 1 GiB and growing the heap 256 MiB
at a time keeps the pages mapped from one step to the next (tcmalloc keeps freed memory by design).

Measured on the 2-core Xeon with AMX, MAE `small` (batch 256, bf16 autocast; forward, backward and fused AdamW in a
plain loop, 10 steps after 3, two runs each): glibc's defaults 624 / 624 ms a step with 37,600 / 39,400 minor page
faults a step (150 MB of pages mapped again each step), these settings 565 / 533 ms with 104 / 236; peak resident
memory the same (1.25-1.31 GB). Without the 256 MiB top pad 581 / 596 ms; with tcmalloc preloaded 494 / 510 ms.

The price: memory a process has freed stays mapped (up to its peak plus the pad) until it exits.

`hf-ssl` applies this at start-up (`cli.main`), which owns the process; a program that imports hf_ssl calls
`keep_freed_memory()` itself if it wants it. Nothing is changed where the C library is not glibc, where another
allocator is preloaded (`LD_PRELOAD` naming tcmalloc or jemalloc), where the user set any `MALLOC_*` tuning
variable, or with `HF_SSL_MALLOC=default`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 2**30
TOP_PAD = 256 * 2**20

_GLIBC_TUNING = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
                 "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory mapped (see the module docstring). Returns whether it did."""
    if os.environ.get("HF_SSL_MALLOC") == "default":
        return False
    if any(name in os.environ for name in _GLIBC_TUNING):
        return False  # the user's own malloc tuning wins
    preloaded = os.environ.get("LD_PRELOAD", "")
    if "tcmalloc" in preloaded or "jemalloc" in preloaded:
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    try:
        libc = ctypes.CDLL(libc_name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl and macOS's libc have no mallopt with these parameters
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in
               ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))


__all__ = ["keep_freed_memory"]
