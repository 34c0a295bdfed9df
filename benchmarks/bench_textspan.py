"""TextSpan on every head of 4 layers of a ViT-B/16-sized model, against the paper's loop.

Ours: :class:`clipinterp.methods.TextSpan`, all 48 heads batched, best of ``REPEATS`` runs.
Reference: the paper's head-by-head loop in numpy (SVD, projection of the texts, then at each
step the scores of every text on every image). Random data: low-rank head outputs plus noise and
a mean, random unit text embeddings. If the reference would take over 5 minutes it is timed on
the first heads and extrapolated linearly (``reference_heads_timed`` in the JSON line); the
picked texts of ours and the reference are compared on the timed heads. ``--quick``: 12 heads,
2,500 images, 1,000 texts (same d, texts per head and rank), for a check in about a minute.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from _common import best_of, load_average, machine, report, speed_fields, time_per_item  # noqa: E402
from clipinterp.methods import TextSpan

D_EMBED, N_TEXTS, RANK = 512, 20, 80
FULL = {"n_heads": 4 * 12, "images": 10_000, "texts": 3_500}
QUICK = {"n_heads": 12, "images": 2_500, "texts": 1_000}
REPEATS = 2


def make_data(n_heads: int, images: int, texts: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Head outputs ``[n_heads, images, D_EMBED]`` (rank-64 signal, noise, a mean) and unit texts ``[texts, D_EMBED]``."""
    g = torch.Generator().manual_seed(seed)
    spectrum = torch.logspace(0, -1.5, 64)
    heads = (torch.randn(n_heads, images, 64, generator=g) * spectrum) @ torch.randn(n_heads, 64, D_EMBED, generator=g)
    heads += 0.05 * torch.randn(n_heads, images, D_EMBED, generator=g)
    heads += torch.randn(n_heads, 1, D_EMBED, generator=g)
    bank = torch.nn.functional.normalize(torch.randn(texts, D_EMBED, generator=g), dim=1)
    return heads, bank


def reference_head(C: np.ndarray, R: np.ndarray, n_texts: int, rank: int) -> tuple[list[int], np.ndarray]:
    """The paper's TextSpan loop for one head, in numpy: picked indices and reconstruction."""
    vh = np.linalg.svd(C, full_matrices=False)[2][:rank]
    R = (R @ vh.T) @ vh
    mean = C.mean(axis=0, keepdims=True)
    C = C - mean
    reconstruction = np.repeat(mean, C.shape[0], axis=0)
    picked = []
    for _ in range(n_texts):
        j = int(np.argmax((C @ R.T).std(axis=0)))
        r = R[j].copy()
        r_sq = r @ r
        step = np.outer(C @ r / r_sq, r)
        reconstruction += step
        C -= step
        R -= np.outer(R @ r / r_sq, r)
        picked.append(j)
    return picked, reconstruction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller problem: " + str(QUICK))
    size = QUICK if parser.parse_args().quick else FULL
    torch.set_num_threads(2)
    heads, texts = make_data(**size)
    n_heads = heads.shape[0]
    load_before = load_average()
    print(f"TextSpan: {n_heads} heads x {size['images']} images x d {D_EMBED}, {size['texts']} texts, "
          f"{N_TEXTS} texts per head, rank {RANK}; {machine()}; load {load_before}")

    fitted, ours_runs = best_of(lambda: TextSpan(N_TEXTS, RANK).fit(heads, texts), REPEATS)
    ours_s = min(ours_runs)
    print(f"ours (batched): {', '.join(f'{s:.1f}' for s in ours_runs)} s, best {ours_s:.1f} s")

    heads_np, texts_np = heads.numpy(), texts.numpy()
    outputs, reference_s, timed_heads = time_per_item(
        lambda i: reference_head(heads_np[i], texts_np, N_TEXTS, RANK)[0], n_heads, "reference head")
    note = f" (extrapolated from {timed_heads} heads)" if timed_heads < n_heads else ""
    print(f"reference (head by head, numpy): {reference_s:.1f} s{note}")

    ours_picks = fitted.indices_[:timed_heads].tolist()
    same_heads = sum(a == b for a, b in zip(ours_picks, outputs))
    same_picks = float(np.mean(np.asarray(ours_picks) == np.asarray(outputs)))
    print(f"identical text lists on {same_heads}/{timed_heads} timed heads ({same_picks:.1%} of picks)")
    print(f"speedup: {reference_s / ours_s:.1f}x")
    report({
        "benchmark": "textspan",
        **speed_fields(ours_runs, reference_s, load_before),
        "heads": n_heads, "images": size["images"], "texts": size["texts"], "d_embed": D_EMBED,
        "n_texts": N_TEXTS, "rank": RANK, "quick": size is QUICK,
        "reference_heads_timed": timed_heads,
        "reference_extrapolated": timed_heads < n_heads,
        "heads_same_texts": same_heads,
        "picks_agree": round(same_picks, 4),
    })


if __name__ == "__main__":
    main()
