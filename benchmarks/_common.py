"""Shared helpers for the benchmarks: the machine, timing, and the final JSON line."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np
import torch

FULL_REFERENCE_LIMIT_S = 300.0  # a reference estimated to take longer is timed on a subset...
SUBSET_BUDGET_S = 120.0  # ...of about this many seconds, then extrapolated linearly


def machine() -> str:
    """A one-line description of the CPU (and GPU), the core count and the torch build."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads){gpu}"


def load_average() -> float:
    """The 1-minute load average (other work on the machine skews timings), or -1 where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``, wall clock."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    """The first run's result and the seconds of each of ``repeats`` runs."""
    runs = [timed(fn) for _ in range(repeats)]
    return runs[0][0], [seconds for _, seconds in runs]


def time_per_item(fn: Callable[[int], Any], n_items: int, label: str) -> tuple[list[Any], float, int]:
    """Run ``fn(0), fn(1), ...`` and time each call.

    Stops early once the estimate for all ``n_items`` exceeds ``FULL_REFERENCE_LIMIT_S`` and
    ``SUBSET_BUDGET_S`` have been spent. Returns the results, the (extrapolated) total seconds for
    all items and how many items were timed.
    """
    results, seconds = [], []
    while len(results) < n_items:
        out, s = timed(lambda: fn(len(results)))
        results.append(out)
        seconds.append(s)
        estimate = float(np.mean(seconds) * n_items)
        print(f"  {label} {len(results) - 1}: {s:.1f} s (estimate for all {n_items}: {estimate:.0f} s)", flush=True)
        if estimate > FULL_REFERENCE_LIMIT_S and sum(seconds) >= SUBSET_BUDGET_S:
            break
    return results, float(np.mean(seconds) * n_items), len(results)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(float(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))


def peak_memory_mb(fn: Callable[[], Any]) -> float:
    """Peak resident memory (MB) that ``fn()`` adds to this process (Linux: the high-water mark is
    reset through ``/proc/self/clear_refs`` first, so earlier peaks do not hide this one)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_mb("VmRSS")
    fn()
    return _status_mb("VmHWM") - base


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn``."""
    return float(np.median([timed(fn)[1] for _ in range(repeats)]))


def probe_memory_mb(script: str, variant: str, batch: int) -> float:
    """Run ``script --probe variant --batch batch`` in a fresh process; its last line is the peak MB."""
    out = subprocess.run([sys.executable, script, "--probe", variant, "--batch", str(batch)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def speed_fields(ours_runs: list[float], reference_s: float, load_before: float) -> dict[str, Any]:
    """The JSON fields every ours-vs-reference timing shares (ours = the fastest run)."""
    ours_s = min(ours_runs)
    return {"ours_s": round(ours_s, 3), "ours_runs_s": [round(s, 3) for s in ours_runs],
            "reference_s": round(reference_s, 3), "ratio": round(ours_s / reference_s, 4),
            "speedup": round(reference_s / ours_s, 2), "machine": machine(),
            "load_average": [load_before, load_average()]}


def random_vit_b16():
    """A HookedCLIP with the ViT-B/16 vision config and random weights (N(0, 0.02)), seeded, in eval mode."""
    import clipinterp
    from clipinterp.model.config import HookedCLIPConfig

    torch.manual_seed(0)
    cfg = HookedCLIPConfig(n_layers=12, n_heads=12, d_model=768, d_mlp=3072, d_embed=512, image_size=224, patch_size=16)
    model = clipinterp.HookedCLIP(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    return model


def report(result: dict[str, Any]) -> None:
    """Print the result as the last line: one JSON object."""
    print(json.dumps(result), flush=True)
