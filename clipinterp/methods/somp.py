"""Simultaneous orthogonal matching pursuit (SOMP), the head score of Head Pursuit.

Head Pursuit (Basile et al., NeurIPS 2025) scores a head for a concept by how much of the
variance of its outputs ``H [n, d]`` a few atoms of the concept's dictionary ``D [M, d]`` explain:
centre ``H``; residual ``R = H``; each step pick the unused atom maximising
``sum_i |<d_j, r_i>|``, refit all chosen atoms by least squares on ``H`` and set
``R = H - reconstruction``.

:class:`SOMP` runs this for many heads at once. The least-squares refit is never solved from
scratch: an orthonormal basis ``Q`` of the chosen atoms grows by one Gram-Schmidt vector per
step (with re-orthogonalisation), so the residual is ``R = H (I - Q^T Q)`` and every quantity the
next pick needs is updated by a rank-one term: the residual correlations ``D R^T`` lose
``(D q)(H q)^T`` and the residual energy loses ``|H q|^2``. The coefficients come from the
triangular factor ``D_S = T^T Q`` once, at the end.
"""
from __future__ import annotations

import warnings
from typing import Union

import torch
from torch import Tensor

from .textspan import _CHUNK_BYTES, _all_finite, _working_dtype

__all__ = ["SOMP", "logit_lens_scores"]

Device = Union[str, torch.device, None]


def _centre(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(x - mean, mean)`` over the rows of each ``[b, n, d]`` matrix; a matrix whose rows are equal
    up to rounding (centred norm below ``100 eps`` of its norm) comes out exactly zero."""
    mean = x.mean(dim=1, keepdim=True)
    centred = x - mean
    flat = (torch.linalg.vector_norm(centred, dim=(1, 2))
            <= 100 * torch.finfo(x.dtype).eps * torch.linalg.vector_norm(x, dim=(1, 2)))
    return centred.masked_fill(flat[:, None, None], 0), mean


def _check_dictionary(D: Tensor, d: int) -> Tensor:
    """Validate a ``[M, d]`` dictionary; zero rows are an error."""
    if D.ndim != 2 or D.shape[0] == 0:
        raise ValueError(f"the dictionary must be a non-empty [M, d], got shape {tuple(D.shape)}")
    if D.shape[1] != d:
        raise ValueError(f"signals have d={d} but dictionary atoms have d={D.shape[1]}")
    if not _all_finite(D):
        raise ValueError("the dictionary contains NaN or inf")
    zero = (D.norm(dim=1) == 0).nonzero().flatten().tolist()
    if zero:
        shown = ", ".join(map(str, zero[:10])) + (", ..." if len(zero) > 10 else "")
        raise ValueError(f"dictionary rows with zero norm: {shown} ({len(zero)} in all); remove them")
    return D


def _pursue(H: Tensor, D: Tensor, n_atoms: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """SOMP on a batch of (already centred) signals.

    H: ``[b, n, d]``, D: ``[M, d]``. Returns support ``[b, s]``, the triangular factor ``[b, s, s]``
    (``D[support] = T^T Q`` with ``Q`` orthonormal), ``H Q^T [b, n, s]`` and explained variance
    ``[b, s]``; ``s = n_atoms`` unless some head ran out of atoms that are not (numerically) in
    the span of its chosen ones, in which case ``s`` is the steps done.
    """
    b, n, d = H.shape
    M = D.shape[0]
    rows = torch.arange(b, device=H.device)
    corr = torch.matmul(D, H.mT)  # [b, M, n]: <d_j, r_i>, the residual starts at H
    atom_sq = D.square().sum(dim=1)
    outside_sq = atom_sq.expand(b, M).clone()  # squared norm of each atom off the chosen span
    min_outside_sq = 1e3 * torch.finfo(H.dtype).eps * atom_sq
    usable = torch.ones(b, M, dtype=torch.bool, device=H.device)
    total = H.square().sum(dim=(1, 2))
    total = torch.where(total > 0, total, torch.ones_like(total))  # a constant head explains 0
    basis = H.new_zeros(b, n_atoms, d)
    tri = H.new_zeros(b, n_atoms, n_atoms)  # D_S = tri^T basis, tri upper triangular
    projected = H.new_zeros(b, n, n_atoms)  # H basis^T
    support = torch.zeros(b, n_atoms, dtype=torch.long, device=H.device)
    explained = H.new_zeros(b, n_atoms)
    energy = H.new_zeros(b)
    steps = n_atoms
    for t in range(n_atoms):
        usable &= outside_sq > min_outside_sq
        if not usable.any(dim=1).all():
            steps = t
            break
        score = torch.linalg.vector_norm(corr, ord=1, dim=-1).masked_fill(~usable, -torch.inf)
        j = score.argmax(dim=-1)
        usable[rows, j] = False
        atom = D[j]  # [b, d]
        chosen = basis[:, :t]
        first = chosen @ atom.unsqueeze(-1)
        v = atom - (chosen.mT @ first).squeeze(-1)
        second = chosen @ v.unsqueeze(-1)
        v = v - (chosen.mT @ second).squeeze(-1)
        length = v.norm(dim=-1)
        q = v / length.unsqueeze(-1)
        basis[:, t] = q
        tri[:, :t, t] = (first + second).squeeze(-1)
        tri[:, t, t] = length
        hq = corr[rows, j] / length.unsqueeze(-1)  # [b, n]: R d_j = length R q = length H q
        dq = q @ D.T  # [b, M]
        projected[:, :, t] = hq
        corr.baddbmm_(dq.unsqueeze(-1), hq.unsqueeze(1), alpha=-1)
        outside_sq -= dq.square()
        energy += hq.square().sum(dim=-1)
        explained[:, t] = energy / total
        support[:, t] = j
    return support[:, :steps], tri[:, :steps, :steps], projected[:, :, :steps], explained[:, :steps]


class SOMP:
    """Simultaneous orthogonal matching pursuit of one signal matrix or a batch of them.

    Parameters
    ----------
    n_atoms: atoms to pick. Capped at the dictionary size ``M`` with a warning; if the chosen
        atoms come to span the whole dictionary (its numerical rank is smaller than
        ``n_atoms``), pursuit stops there with a warning and the attributes have fewer columns.
    center: subtract the mean signal (over ``n``) first, as Head Pursuit does.
    normalize_dictionary: L2-normalise the atoms (rows of ``D``).
    device: where to compute; by default the device of ``H``.

    Attributes (after :meth:`fit`; the leading ``B`` only for a batch)
    ----------
    support_: ``[B, n_atoms]`` long, the chosen atoms in pick order.
    coef_: ``[B, n, n_atoms]``, least-squares coefficients of the chosen atoms (support order)
        for the centred signals, after the last step.
    explained_variance_: ``[B, n_atoms]``, ``1 - |R|_F^2 / |H_c|_F^2`` after each step
        (0 for a signal constant up to rounding).
    score_: ``[B]``, the final explained variance (the Head Pursuit head score).
    mean_: ``[B, 1, d]``, the mean removed (zeros when ``center=False``).
    dictionary_: ``[M, d]``, the dictionary used (normalised when asked).

    Dictionary rows with zero norm and non-finite inputs raise ``ValueError``. Atoms nearly in
    the span of the chosen ones (off-span norm below ``sqrt(1e3 * eps)`` of their own) are never
    picked. Computation is float32 unless ``H`` is float64; batches are split into chunks of
    about 2 GB of working memory.
    """

    def __init__(self, n_atoms: int = 50, center: bool = True, normalize_dictionary: bool = True,
                 device: Device = None) -> None:
        self.n_atoms = n_atoms
        self.center = center
        self.normalize_dictionary = normalize_dictionary
        self.device = device

    def fit(self, H: Tensor, D: Tensor) -> "SOMP":
        """Pursue ``H`` (``[n, d]`` or ``[B, n, d]``) with the atoms of ``D`` (``[M, d]``)."""
        H = torch.as_tensor(H)
        if H.ndim not in (2, 3) or H.shape[-2] == 0:
            raise ValueError(f"H must be a non-empty [n, d] or [B, n, d], got shape {tuple(H.shape)}")
        if not _all_finite(H):
            raise ValueError("H contains NaN or inf")
        D = _check_dictionary(torch.as_tensor(D), H.shape[-1])
        if self.n_atoms < 1:
            raise ValueError(f"n_atoms must be positive, got {self.n_atoms}")
        n_atoms = self.n_atoms
        if n_atoms > D.shape[0]:
            warnings.warn(f"n_atoms={n_atoms} exceeds the dictionary size {D.shape[0]}; using {D.shape[0]}",
                          stacklevel=2)
            n_atoms = D.shape[0]

        batched = H.ndim == 3
        H = H if batched else H.unsqueeze(0)
        device = torch.device(self.device) if self.device is not None else H.device
        dtype = _working_dtype(H)
        D = D.to(device=device, dtype=dtype)
        if self.normalize_dictionary:
            D = D / D.norm(dim=1, keepdim=True)
        B, n, d = H.shape
        per_head = (torch.finfo(dtype).bits // 8) * (D.shape[0] * n + 2 * n * d + n * n_atoms)
        step = max(1, _CHUNK_BYTES // per_head)
        means, parts = [], []
        for i in range(0, B, step):
            chunk = H[i:i + step].to(device=device, dtype=dtype)
            centred, mean = _centre(chunk) if self.center else (chunk, torch.zeros_like(chunk[:, :1]))
            means.append(mean)
            parts.append(_pursue(centred, D, n_atoms))
        steps = min(p[0].shape[1] for p in parts)
        if steps < n_atoms:
            warnings.warn(f"after {steps} atoms no atom is left outside the span of the chosen ones (the "
                          f"dictionary's numerical rank); stopped at {steps} of {n_atoms}", stacklevel=2)
        support = torch.cat([p[0][:, :steps] for p in parts])
        tri = torch.cat([p[1][:, :steps, :steps] for p in parts])
        projected = torch.cat([p[2][:, :, :steps] for p in parts])
        explained = torch.cat([p[3][:, :steps] for p in parts])
        coef = torch.linalg.solve_triangular(tri.mT, projected, upper=False, left=False)  # coef T^T = H Q^T
        mean = torch.cat(means)
        if not batched:
            support, coef, explained, mean = support[0], coef[0], explained[0], mean[0]
        self.support_ = support
        self.coef_ = coef
        self.explained_variance_ = explained
        self.score_ = explained[..., -1]
        self.mean_ = mean
        self.dictionary_ = D
        return self

    def reconstruct(self) -> Tensor:
        """The fitted signals' reconstruction ``mean_ + coef_ @ D[support_]``: ``[n, d]`` / ``[B, n, d]``."""
        return self.mean_ + self.coef_ @ self.dictionary_[self.support_]


def logit_lens_scores(H: Tensor, D: Tensor, normalize_dictionary: bool = True) -> Tensor:
    """The logit-lens baseline of Head Pursuit: mean projection of the signal on the concept.

    Signed mean of ``<h_i, d_j>`` over samples ``i`` and atoms ``j``, on the uncentred signal
    ``H`` (``[n, d]`` -> scalar, ``[B, n, d]`` -> ``[B]``) and the (normalised) atoms of ``D``
    ``[M, d]``: how far the head writes along the concept's directions on average; positive
    when it promotes the concept. Equal to ``<mean_i h_i, mean_j d_j>``.
    """
    H = torch.as_tensor(H)
    if H.ndim not in (2, 3):
        raise ValueError(f"H must be [n, d] or [B, n, d], got shape {tuple(H.shape)}")
    D = _check_dictionary(torch.as_tensor(D), H.shape[-1]).to(device=H.device, dtype=_working_dtype(H))
    if normalize_dictionary:
        D = D / D.norm(dim=1, keepdim=True)
    return H.to(D.dtype).mean(dim=-2) @ D.mean(dim=0)
