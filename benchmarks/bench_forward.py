"""Hooked forward (no hooks) vs transformers' CLIPVisionModelWithProjection, same weights, batch
and threads, ViT-B/16 config; and run_with_cache with a names filter vs all hooks (time and peak
memory). Last line: one JSON object, ``ratio`` = ours / transformers forward time."""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median_seconds, peak_memory_mb, probe_memory_mb, random_vit_b16, report  # noqa: E402

SPEC = "openai/clip-vit-base-patch16"
FILTER = [f"blocks.{l}.hook_resid_post" for l in range(12)] + ["ln_final.hook_scale"]


def memory_probe(variant: str, batch: int) -> None:
    """In a fresh process: peak RSS added by one call of ``variant`` over the loaded model."""
    torch.set_num_threads(2)
    model = random_vit_b16()
    pixels = torch.randn(batch, 3, 224, 224)
    calls = {"forward": lambda: model(pixels),
             "cache_filtered": lambda: model.run_with_cache(pixels, names_filter=FILTER),
             "cache_all": lambda: model.run_with_cache(pixels)}
    with torch.no_grad():
        print(peak_memory_mb(calls[variant]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--probe", default=None)
    args = parser.parse_args()
    if args.probe:
        return memory_probe(args.probe, args.batch)

    import clipinterp
    from checkpoints import hf_checkpoint
    from transformers import CLIPVisionModelWithProjection, logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(2)
    folder = hf_checkpoint(Path(tempfile.mkdtemp()) / "b16", SPEC, layers=12)
    ours = clipinterp.load(folder)
    ref = CLIPVisionModelWithProjection.from_pretrained(folder).eval()
    pixels = torch.randn(args.batch, 3, 224, 224)
    with torch.no_grad():
        err = ((ours(pixels) - ref(pixel_values=pixels).image_embeds).abs().max()).item()
        for _ in range(2):  # warm-up
            ours(pixels), ref(pixel_values=pixels)
        # interleave so both see the same machine state
        t_ours, t_ref = [], []
        for _ in range(args.repeats):
            t_ours.append(median_seconds(lambda: ours(pixels), 1))
            t_ref.append(median_seconds(lambda: ref(pixel_values=pixels), 1))
        t_filtered = median_seconds(lambda: ours.run_with_cache(pixels, names_filter=FILTER), 3)
        t_all = median_seconds(lambda: ours.run_with_cache(pixels), 3)
    mem = {variant: probe_memory_mb(__file__, variant, args.batch)
           for variant in ("forward", "cache_filtered", "cache_all")}
    print("peak MB added per variant:", mem)
    ours_s, ref_s = statistics.median(t_ours), statistics.median(t_ref)
    print(f"forward, batch {args.batch}: ours {ours_s * 1e3:.1f} ms, transformers {ref_s * 1e3:.1f} ms "
          f"(ratio {ours_s / ref_s:.3f}); max abs diff {err:.2e}")
    print(f"run_with_cache: filtered {t_filtered * 1e3:.1f} ms / {mem['cache_filtered']:.0f} MB peak; "
          f"all hooks {t_all * 1e3:.1f} ms / {mem['cache_all']:.0f} MB; plain forward peak {mem['forward']:.0f} MB")
    report({"benchmark": "forward", "config": "ViT-B/16", "batch": args.batch, "threads": 2,
            "ours_ms": round(ours_s * 1e3, 2), "transformers_ms": round(ref_s * 1e3, 2),
            "ratio": round(ours_s / ref_s, 4), "max_abs_diff": err,
            "cache_filtered_ms": round(t_filtered * 1e3, 2), "cache_all_ms": round(t_all * 1e3, 2),
            "cache_time_ratio_filtered_vs_all": round(t_filtered / t_all, 4),
            "peak_mb_forward": round(mem["forward"], 1), "peak_mb_cache_filtered": round(mem["cache_filtered"], 1),
            "peak_mb_cache_all": round(mem["cache_all"], 1),
            "cache_memory_ratio_filtered_vs_all": round(mem["cache_filtered"] / mem["cache_all"], 4),
            "machine": machine()})


if __name__ == "__main__":
    main()
