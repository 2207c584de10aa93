"""What this CPU does fast: native bfloat16 (AVX-512 BF16 or AMX), for mixed precision on CPU.

On a CPU with it, ``torch.autocast("cpu", dtype=torch.bfloat16)`` runs these convnets about 1.4x
faster than float32 (docs/benchmarks.md); without it bfloat16 is emulated and slower, so float32
stays. ``PCBSEG_CPU_BF16=0`` or ``1`` overrides the detection (tests, unusual kernels).

Example:
    >>> cpu_has_bf16("flags : fpu sse avx512f avx512_bf16"), cpu_has_bf16("flags : fpu sse avx2")
    (True, False)
"""

from __future__ import annotations

import os
from pathlib import Path

_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (Linux: the flags in /proc/cpuinfo)."""
    forced = os.environ.get("PCBSEG_CPU_BF16", "").strip()
    if cpuinfo is None and forced in ("0", "1"):
        return forced == "1"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False  # not Linux: no way to tell cheaply, so the safe choice
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split(":", 1)[-1].split()}
    return any(f in flags for f in _FLAGS)


def cpu_precision() -> str:
    """Lightning's ``precision`` for training on this CPU: ``bf16-mixed`` where native, else ``32-true``."""
    return "bf16-mixed" if cpu_has_bf16() else "32-true"


def inference_dtype(precision: str, device: str) -> str | None:
    """``"bf16"`` or None (float32) for prediction: ``precision`` is ``auto``, ``bf16`` or ``32``.

    ``auto`` is bfloat16 on a CPU that has it natively and on CUDA devices, float32 elsewhere.
    """
    if precision not in ("auto", "bf16", "32"):
        raise ValueError(f"precision={precision!r} is unknown: auto, bf16 or 32")
    if precision == "auto":
        return "bf16" if (str(device).startswith("cuda") or cpu_has_bf16()) else None
    return "bf16" if precision == "bf16" else None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def loader_workers(requested: int | str, cores: int | None = None) -> int:
    """DataLoader worker processes: ``requested`` as a count, or ``"auto"``: chosen from the cores.

    With images decoded once into the cache, a training crop costs a few milliseconds of
    augmentation; a worker then buys overlap with the network's step only where it has a core of
    its own. ``auto`` keeps two cores for the network's threads and gives the loader a quarter of
    the rest (at most 8): none on a 2-core machine, where 1 or 2 workers measured no faster than
    none (docs/benchmarks.md, train-throughput) and each would hold its own copy of the cache.
    """
    if requested == "auto":
        cores = available_cores() if cores is None else cores
        return 0 if cores <= 2 else min(8, max(1, (cores - 2) // 4))
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise ValueError(f"data.num_workers={requested!r} must be a whole number >= 0 or 'auto'")
    return requested
