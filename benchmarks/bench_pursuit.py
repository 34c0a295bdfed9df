"""SOMP (Head Pursuit) on every head of a ViT-B/16-sized model, against a per-head loop.

Ours: :class:`clipinterp.methods.SOMP`, all 144 heads batched (incremental Gram-Schmidt and
rank-one updates), best of ``REPEATS`` runs. Reference: head by head, each step scores every atom
on the residual and refits all chosen atoms with ``torch.linalg.lstsq``. Random data: signals
that are sparse combinations of dictionary atoms plus a low-rank part and noise. If the reference
would take over 5 minutes it is timed on the first heads and extrapolated linearly
(``reference_heads_timed`` in the JSON); supports are compared on the timed heads.

``--quick``: 48 heads x 1,000 images, 300 atoms (same 50 steps), for a small machine; the default
is the full size above.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from _common import best_of, load_average, machine, report, speed_fields, time_per_item  # noqa: E402
from clipinterp.methods import SOMP

D_EMBED, N_ATOMS = 512, 50
SIZES = {"full": dict(heads=12 * 12, images=5_000, atoms=1_000), "quick": dict(heads=48, images=1_000, atoms=300)}
REPEATS = 2


def make_data(heads: int, images: int, atoms: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Signals ``[heads, images, D_EMBED]`` and a dictionary ``[atoms, D_EMBED]`` of unit atoms."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.nn.functional.normalize(torch.randn(atoms, D_EMBED, generator=g), dim=1)
    chosen = torch.stack([torch.randperm(atoms, generator=g)[:20] for _ in range(heads)])
    weights = torch.randn(heads, images, 20, generator=g) * torch.logspace(0, -1, 20)
    signals = weights @ dictionary[chosen]
    low_rank = torch.nn.functional.normalize(torch.randn(heads, 16, D_EMBED, generator=g), dim=-1)
    signals += 0.3 * torch.randn(heads, images, 16, generator=g) @ low_rank
    signals += 0.02 * torch.randn(heads, images, D_EMBED, generator=g)
    return signals, dictionary


def reference_head(H: torch.Tensor, D: torch.Tensor, n_atoms: int) -> tuple[list[int], float]:
    """Straightforward SOMP for one head: support and final explained variance."""
    H = H - H.mean(dim=0, keepdim=True)
    residual = H
    support: list[int] = []
    for _ in range(n_atoms):
        scores = (residual @ D.T).abs().sum(dim=0)
        scores[support] = -torch.inf
        support.append(int(scores.argmax()))
        atoms = D[support]
        coef = torch.linalg.lstsq(atoms.T, H.T).solution.T
        residual = H - coef @ atoms
    return support, 1 - float(residual.square().sum() / H.square().sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: " + str(SIZES["quick"]))
    size_name = "quick" if parser.parse_args().quick else "full"
    size = SIZES[size_name]
    torch.set_num_threads(2)
    signals, dictionary = make_data(**size)
    n_heads, images, atoms = size["heads"], size["images"], size["atoms"]
    load_before = load_average()
    print(f"SOMP: {n_heads} heads x {images} images x d {D_EMBED}, {atoms} atoms, {N_ATOMS} steps; "
          f"{machine()}; load {load_before}")

    fitted, ours_runs = best_of(lambda: SOMP(N_ATOMS).fit(signals, dictionary), REPEATS)
    ours_s = min(ours_runs)
    print(f"ours (batched): {', '.join(f'{s:.1f}' for s in ours_runs)} s, best {ours_s:.1f} s")

    outputs, reference_s, timed_heads = time_per_item(
        lambda i: reference_head(signals[i], dictionary, N_ATOMS), n_heads, "reference head")
    note = f" (extrapolated from {timed_heads} heads)" if timed_heads < n_heads else ""
    print(f"reference (head by head, lstsq refit): {reference_s:.1f} s{note}")

    reference_supports = [support for support, _ in outputs]
    ours_supports = fitted.support_[:timed_heads].tolist()
    same_heads = sum(a == b for a, b in zip(ours_supports, reference_supports))
    same_picks = float(np.mean(np.asarray(ours_supports) == np.asarray(reference_supports)))
    score_error = float(np.max(np.abs(fitted.score_[:timed_heads].numpy() - [score for _, score in outputs])))
    print(f"identical supports on {same_heads}/{timed_heads} timed heads ({same_picks:.1%} of picks); "
          f"max score difference {score_error:.1e}; mean score {fitted.score_.mean():.3f}")
    print(f"speedup: {reference_s / ours_s:.1f}x")
    report({
        "benchmark": "pursuit",
        "size": size_name,
        **speed_fields(ours_runs, reference_s, load_before),
        "heads": n_heads, "images": images, "atoms": atoms, "d_embed": D_EMBED, "n_atoms": N_ATOMS,
        "reference_heads_timed": timed_heads,
        "reference_extrapolated": timed_heads < n_heads,
        "heads_same_support": same_heads,
        "picks_agree": round(same_picks, 4),
        "max_score_difference": score_error,
    })


if __name__ == "__main__":
    main()
