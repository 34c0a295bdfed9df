"""TextSpan against a direct, head-by-head float64 re-derivation of the paper's loop."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from clipinterp.methods import TextSpan, textspan_completeness, textspan_heads


def reference_textspan(C: np.ndarray, R: np.ndarray, n_texts: int, rank: int):
    """The paper's loop for one head ``C [K, d]``, texts ``R [M, d]``, in float64 numpy.

    Returns picked indices, cumulative variance explained and the reconstruction.
    """
    C = C.astype(np.float64)
    R = R.astype(np.float64)
    vh = np.linalg.svd(C, full_matrices=False)[2][:rank]
    R = R @ vh.T @ vh  # projection onto the top right singular vectors
    mean = C.mean(axis=0, keepdims=True)
    C = C - mean
    centred_energy = np.mean(np.sum(C**2, axis=1))
    reconstruction = np.repeat(mean, C.shape[0], axis=0)
    picked, variance = [], []
    for _ in range(n_texts):
        stds = [np.std(C @ R[j]) for j in range(R.shape[0])]
        j = int(np.argmax(stds))
        r = R[j].copy()
        r_sq = r @ r
        step = np.outer(C @ r / r_sq, r)
        reconstruction = reconstruction + step
        C = C - step
        for i in range(R.shape[0]):
            R[i] = R[i] - (R[i] @ r / r_sq) * r
        picked.append(j)
        variance.append(np.mean(np.sum((reconstruction - mean) ** 2, axis=1)) / centred_energy)
    return np.array(picked), np.array(variance), reconstruction


def random_problem(seed: int, B: int = 3, K: int = 120, d: int = 24, M: int = 50):
    """Head outputs with a mean and an uneven spectrum, and unit text embeddings."""
    g = torch.Generator().manual_seed(seed)
    spectrum = torch.logspace(0, -1.5, d, dtype=torch.float64)
    C = torch.randn(B, K, d, generator=g, dtype=torch.float64) * spectrum + torch.randn(B, 1, d, generator=g,
                                                                                        dtype=torch.float64)
    R = torch.nn.functional.normalize(torch.randn(M, d, generator=g, dtype=torch.float64), dim=1)
    return C, R


@pytest.mark.parametrize("rank", [10, 80])  # 80 is capped at d = 24: no projection
def test_matches_reference_float64(rank):
    C, R = random_problem(0)
    fitted = TextSpan(n_texts=6, rank=rank).fit(C, R)
    for b in range(C.shape[0]):
        indices, variance, reconstruction = reference_textspan(C[b].numpy(), R.numpy(), 6, rank)
        np.testing.assert_array_equal(fitted.indices_[b].numpy(), indices)
        np.testing.assert_allclose(fitted.variance_explained_[b].numpy(), variance, rtol=1e-4)
        np.testing.assert_allclose(fitted.reconstruction_[b].numpy(), reconstruction, rtol=0, atol=1e-9)


def test_float32_matches_float64_reference():
    C, R = random_problem(1)
    fitted = TextSpan(n_texts=5, rank=12).fit(C.float(), R.float())
    assert fitted.variance_explained_.dtype == torch.float32
    for b in range(C.shape[0]):
        indices, variance, reconstruction = reference_textspan(C[b].numpy(), R.numpy(), 5, 12)
        np.testing.assert_array_equal(fitted.indices_[b].numpy(), indices)
        np.testing.assert_allclose(fitted.variance_explained_[b].numpy(), variance, rtol=1e-4)
        np.testing.assert_allclose(fitted.reconstruction_[b].numpy(), reconstruction, rtol=0, atol=1e-4)


def test_batched_equals_per_head():
    C, R = random_problem(2, B=4)
    texts = [f"text {i}" for i in range(R.shape[0])]
    batched = TextSpan(n_texts=4, rank=8).fit(C, R, texts)
    for b in range(C.shape[0]):
        single = TextSpan(n_texts=4, rank=8).fit(C[b], R, texts)
        assert single.indices_.shape == (4,)
        assert single.reconstruction_.shape == C[b].shape
        torch.testing.assert_close(batched.indices_[b], single.indices_, rtol=0, atol=0)
        torch.testing.assert_close(batched.variance_explained_[b], single.variance_explained_, rtol=1e-10, atol=0)
        torch.testing.assert_close(batched.reconstruction_[b], single.reconstruction_, rtol=0, atol=1e-10)
        torch.testing.assert_close(batched.mean_[b], C[b].mean(0, keepdim=True), rtol=0, atol=1e-12)
        assert batched.texts_[b] == single.texts_ == [texts[i] for i in single.indices_.tolist()]


def test_planted_texts_are_found():
    g = torch.Generator().manual_seed(3)
    d, M, K = 64, 200, 500
    R = torch.nn.functional.normalize(torch.randn(M, d, generator=g), dim=1)
    planted = [7, 42, 150]
    weights = torch.randn(K, 3, generator=g) * torch.tensor([3.0, 2.0, 1.0])
    C = weights @ R[planted] + 0.01 * torch.randn(K, d, generator=g) + R[0]
    fitted = TextSpan(n_texts=3, rank=80).fit(C, R)
    assert fitted.indices_.tolist() == planted  # in order of the variance each carries
    assert fitted.variance_explained_[2] > 0.95
    assert torch.all(fitted.variance_explained_.diff() >= 0)


def test_span_exhausted_picks_add_nothing():
    C, R = random_problem(4, B=1, d=8, M=20)
    fitted = TextSpan(n_texts=6, rank=3).fit(C[0], R)  # rank 3: the span is full after 3 texts
    assert len(set(fitted.indices_.tolist())) == 6  # no text is picked twice
    variance = fitted.variance_explained_
    assert torch.isfinite(variance).all()
    torch.testing.assert_close(variance[3:], variance[2].expand(3), rtol=1e-12, atol=0)


def test_constant_head_explains_nothing():
    C, R = random_problem(10, B=2)
    C[1] = C[1, :1]  # every image gives the same output
    fitted = TextSpan(n_texts=3, rank=8).fit(C, R)
    torch.testing.assert_close(fitted.variance_explained_[1], torch.zeros(3, dtype=C.dtype), rtol=0, atol=0)
    torch.testing.assert_close(fitted.reconstruction_[1], C[1], rtol=0, atol=1e-12)
    assert fitted.variance_explained_[0, -1] > 0


def make_decomposition(seed: int, N: int = 60, L: int = 3, H: int = 2, d: int = 16):
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(heads=torch.randn(N, L, H, d, generator=g, dtype=torch.float64))


def test_textspan_heads_frame():
    dec = make_decomposition(5)
    _, R = random_problem(5, d=16, M=30)
    texts = [f"t{i}" for i in range(30)]
    frame = textspan_heads(dec, (texts, R), layers=[0, 2], n_texts=3, rank=8, batch_heads=3)
    assert list(frame.columns) == ["layer", "head", "rank", "text", "text_index", "variance_explained"]
    assert len(frame) == 2 * 2 * 3
    for (layer, head), rows in frame.groupby(["layer", "head"]):
        assert layer in (0, 2)
        fitted = TextSpan(n_texts=3, rank=8).fit(dec.heads[:, layer, head], R)
        assert rows["rank"].tolist() == [0, 1, 2]
        assert rows["text_index"].tolist() == fitted.indices_.tolist()
        assert rows["text"].tolist() == [texts[i] for i in fitted.indices_.tolist()]
        np.testing.assert_allclose(rows["variance_explained"], fitted.variance_explained_.numpy(), rtol=1e-12)
    bank = SimpleNamespace(texts=texts, embeddings=R)
    assert len(textspan_heads(dec, bank, n_texts=2, rank=8)) == 3 * 2 * 2  # all layers by default


def test_bad_inputs():
    dec = make_decomposition(6)
    _, R = random_problem(6, d=12, M=10)
    texts = [f"t{i}" for i in range(10)]
    with pytest.raises(ValueError, match="d_embed=16.*d_embed=12"):
        textspan_heads(dec, (texts, R))
    _, R = random_problem(6, d=16, M=10)
    with pytest.raises(ValueError, match="n_texts=11"):
        textspan_heads(dec, (texts, R), n_texts=11)
    with pytest.raises(ValueError, match="n_texts=11 must be between 1 and the number of texts \\(10\\)"):
        TextSpan(n_texts=11).fit(dec.heads[:, 0, 0], R)
    with pytest.raises(ValueError, match="empty"):
        textspan_heads(dec, ([], torch.zeros(0, 16)))
    with pytest.raises(ValueError, match="non-empty"):
        TextSpan().fit(dec.heads[:, 0, 0], torch.zeros(0, 16))
    with pytest.raises(ValueError, match="9 texts"):
        TextSpan().fit(dec.heads[:, 0, 0], R, texts[:9])
    with pytest.raises(ValueError, match="NaN"):
        TextSpan(n_texts=2).fit(torch.full((5, 16), float("nan")), R)
    with pytest.raises(ValueError, match="layer 3 out of range"):
        textspan_heads(dec, (texts, R), layers=[3])


def test_completeness():
    g = torch.Generator().manual_seed(7)
    N, L, H, d, M = 80, 3, 2, 16, 40
    R = torch.nn.functional.normalize(torch.randn(M, d, generator=g, dtype=torch.float64), dim=1)
    heads = 0.3 * torch.randn(1, L, H, d, generator=g, dtype=torch.float64).expand(N, L, H, d).clone()
    # the last layer's heads vary over images inside the span of two texts each
    for h in range(H):
        heads[:, 2, h] += torch.randn(N, 2, generator=g, dtype=torch.float64) @ R[[3 * h, 3 * h + 1]]
    dec = SimpleNamespace(heads=heads, mlps=torch.ones(N, L, d, dtype=torch.float64).expand(N, L, d) * 0.1,
                          embed=torch.randn(1, d, generator=g, dtype=torch.float64).expand(N, d),
                          bias=torch.randn(d, generator=g, dtype=torch.float64))
    classes = torch.nn.functional.normalize(torch.randn(5, d, generator=g, dtype=torch.float64), dim=1)
    full = heads.sum(dim=(1, 2)) + dec.mlps.sum(1) + dec.embed + dec.bias
    labels = (full @ classes.T).argmax(1)
    bank = ([f"t{i}" for i in range(M)], R)
    # other components are constant and the chosen heads lie in their texts' span: exact
    assert textspan_completeness(dec, bank, classes, labels, layers=[2], n_texts=2, rank=8) == 1.0

    # a rougher reconstruction (1 text per head): the bank path equals the fitted path and a manual sum
    noisy = make_decomposition(8, N=N, L=L, H=H, d=d)
    dec.heads = noisy.heads
    layers = [1, 2]
    fitted = TextSpan(n_texts=1, rank=8).fit(dec.heads[:, layers].permute(1, 2, 0, 3).flatten(0, 1), R)
    from_bank = textspan_completeness(dec, bank, classes, labels, layers, n_texts=1, rank=8)
    from_fitted = textspan_completeness(dec, fitted, classes, labels, layers)
    total = (fitted.reconstruction_.sum(0) + dec.heads[:, 0].sum(1).mean(0) + dec.mlps.sum(1).mean(0)
             + dec.embed.mean(0) + dec.bias)
    expected = ((total @ classes.T).argmax(1) == labels).double().mean().item()
    assert from_bank == from_fitted == expected
    with pytest.raises(ValueError, match="expected"):
        textspan_completeness(dec, fitted, classes, labels, layers=[2])
    with pytest.raises(ValueError, match="labels must index the 5 classes"):  # 1-based labels
        textspan_completeness(dec, fitted, classes, labels + 1, layers)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    C, R = random_problem(9, B=4)
    C, R = C.float(), R.float()
    cpu = TextSpan(n_texts=5, rank=12).fit(C, R)
    gpu = TextSpan(n_texts=5, rank=12, device="cuda").fit(C, R)
    assert gpu.reconstruction_.is_cuda
    torch.testing.assert_close(gpu.indices_.cpu(), cpu.indices_, rtol=0, atol=0)
    torch.testing.assert_close(gpu.variance_explained_.cpu(), cpu.variance_explained_, rtol=1e-4, atol=0)
    torch.testing.assert_close(gpu.reconstruction_.cpu(), cpu.reconstruction_, rtol=0, atol=1e-4)
