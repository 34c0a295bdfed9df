"""Head decomposition vs a plain forward (time and peak memory), ViT-B/16 config, random weights;
and per-token contributions from the CLS row (ours) vs the all-tokens approach that materialises
``[batch, T, T, heads, width]`` for one layer. Targets: decomposition peak memory <= 1.5x and time
<= 1.3x of the forward. Last line: one JSON object, ``ratio`` = decomposition / forward time."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (load_average, machine, median_seconds, peak_memory_mb, probe_memory_mb,  # noqa: E402
                     random_vit_b16, report)

LAYER = 11


@torch.no_grad()
def all_tokens(model, pixels: torch.Tensor, layer: int) -> torch.Tensor:
    """Per-source-token contributions of every head of ``layer`` to the embedding, the direct way:
    every query row's ``[T, T, H, width]`` terms, then the CLS row, through ln_final and the projection."""
    names = [f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.attn.hook_v", "ln_final.hook_scale"]
    _, cache = model.run_with_cache(pixels, names_filter=names)
    pattern, v = cache[names[0]], cache[names[1]]  # [b, H, q, k], [b, k, H, d_head]
    W_O = model.blocks[layer].attn.W_O  # [H, d_head, width]
    per_token = torch.einsum("bhqk,bkhd,hdm->bqkhm", pattern, v, W_O)  # [b, T, T, H, width]
    cls = per_token[:, 0]
    cls = (cls - cls.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"][:, 0, None, None]  # centered
    return (cls * model.ln_final.w) @ model.W_proj


def variants(model, pixels):
    import clipinterp

    return {
        "forward": lambda: model(pixels),
        "decompose": lambda: clipinterp.decompose(model, pixels, batch_size=len(pixels), progress=False),
        "tokens_cls_row": lambda: clipinterp.decompose(model, pixels, tokens=True, layers=[LAYER], convention="centered",
                                                       batch_size=len(pixels), progress=False),
        "tokens_all_rows": lambda: all_tokens(model, pixels, LAYER),
    }


def probe(variant: str, batch: int) -> None:
    """In a fresh process: peak memory added by one call of ``variant``."""
    torch.set_num_threads(2)
    model = random_vit_b16()
    pixels = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        print(peak_memory_mb(variants(model, pixels)[variant]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--token-batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--probe", default=None)
    args = parser.parse_args()
    if args.probe:
        return probe(args.probe, args.batch)
    torch.set_num_threads(2)
    model = random_vit_b16()
    pixels = torch.randn(args.batch, 3, 224, 224)
    small = pixels[:args.token_batch]
    calls, token_calls = variants(model, pixels), variants(model, small)
    with torch.no_grad():
        dec = calls["decompose"]()
        sum_error = ((dec.total() - model.encode_image(pixels, normalize=False)).norm(dim=-1)
                     / dec.norms).max().item()
        ours_tokens = token_calls["tokens_cls_row"]().tokens[:, 0]  # [b, H, T, d_embed]
        naive_tokens = token_calls["tokens_all_rows"]().permute(0, 2, 1, 3)
        token_error = ((ours_tokens - naive_tokens).abs().max() / naive_tokens.abs().max()).item()
        for fn in calls.values():  # warm-up
            fn()
        t = {name: median_seconds(fn, args.repeats) for name, fn in calls.items() if not name.startswith("tokens")}
        t.update({name: median_seconds(fn, args.repeats) for name, fn in token_calls.items() if name.startswith("tokens")})
    mem = {name: probe_memory_mb(__file__, name, args.batch) for name in ("forward", "decompose")}
    mem.update({name: probe_memory_mb(__file__, name, args.token_batch) for name in ("tokens_cls_row", "tokens_all_rows")})
    print(f"batch {args.batch}: forward {t['forward']:.2f} s / {mem['forward']:.0f} MB, head decomposition "
          f"{t['decompose']:.2f} s / {mem['decompose']:.0f} MB (sum error {sum_error:.1e})")
    print(f"per-token terms of layer {LAYER}, batch {args.token_batch}: CLS row {t['tokens_cls_row']:.2f} s / "
          f"{mem['tokens_cls_row']:.0f} MB, all rows {t['tokens_all_rows']:.2f} s / {mem['tokens_all_rows']:.0f} MB "
          f"(max relative difference {token_error:.1e})")
    report({"benchmark": "decompose", "config": "ViT-B/16", "batch": args.batch, "threads": 2,
            "forward_s": round(t["forward"], 3), "decompose_s": round(t["decompose"], 3),
            "ratio": round(t["decompose"] / t["forward"], 4),
            "memory_ratio": round(mem["decompose"] / mem["forward"], 4),
            "peak_mb_forward": round(mem["forward"], 1), "peak_mb_decompose": round(mem["decompose"], 1),
            "sum_max_relative_error": sum_error,
            "token_batch": args.token_batch, "tokens_cls_row_s": round(t["tokens_cls_row"], 3),
            "tokens_all_rows_s": round(t["tokens_all_rows"], 3),
            "peak_mb_tokens_cls_row": round(mem["tokens_cls_row"], 1),
            "peak_mb_tokens_all_rows": round(mem["tokens_all_rows"], 1),
            "tokens_max_relative_difference": token_error,
            "load_average": load_average(), "machine": machine()})


if __name__ == "__main__":
    main()
