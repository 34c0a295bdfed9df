"""SOMP against a direct implementation that refits with numpy's lstsq at every step."""

import numpy as np
import pytest
import torch

from clipinterp.methods import SOMP, logit_lens_scores


def reference_somp(H: np.ndarray, D: np.ndarray, n_atoms: int, center: bool = True):
    """SOMP for one signal matrix ``H [n, d]`` with atoms ``D [M, d]``, float64, plain loops.

    Returns the support, explained variance after each step and the final coefficients.
    """
    H = H.astype(np.float64)
    D = D.astype(np.float64)
    D = D / np.linalg.norm(D, axis=1, keepdims=True)
    if center:
        H = H - H.mean(axis=0, keepdims=True)
    energy = np.sum(H**2)
    residual = H.copy()
    support, explained = [], []
    coef = None
    for _ in range(n_atoms):
        scores = np.full(D.shape[0], -np.inf)
        for j in range(D.shape[0]):
            if j not in support:
                scores[j] = sum(abs(D[j] @ residual[i]) for i in range(H.shape[0]))
        support.append(int(np.argmax(scores)))
        coef = np.linalg.lstsq(D[support].T, H.T, rcond=None)[0].T  # [n, k]
        residual = H - coef @ D[support]
        explained.append(1 - np.sum(residual**2) / energy)
    return np.array(support), np.array(explained), coef


def random_problem(seed: int, B: int = 3, n: int = 30, d: int = 20, M: int = 50, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    H = torch.randn(B, n, d, generator=g, dtype=torch.float64) * torch.logspace(0, -1, d, dtype=torch.float64)
    H = H + torch.randn(B, 1, d, generator=g, dtype=torch.float64)
    D = torch.randn(M, d, generator=g, dtype=torch.float64) * 2
    return H.to(dtype), D.to(dtype)


@pytest.mark.parametrize("center", [True, False])
def test_matches_reference_float64(center):
    H, D = random_problem(0)
    fitted = SOMP(n_atoms=8, center=center).fit(H, D)
    for b in range(H.shape[0]):
        support, explained, coef = reference_somp(H[b].numpy(), D.numpy(), 8, center)
        np.testing.assert_array_equal(fitted.support_[b].numpy(), support)
        np.testing.assert_allclose(fitted.explained_variance_[b].numpy(), explained, rtol=1e-5)
        np.testing.assert_allclose(fitted.coef_[b].numpy(), coef, rtol=0, atol=1e-9)
    torch.testing.assert_close(fitted.score_, fitted.explained_variance_[:, -1], rtol=0, atol=0)


def test_matches_reference_float32():
    H, D = random_problem(1, dtype=torch.float32)
    fitted = SOMP(n_atoms=10).fit(H, D)
    assert fitted.coef_.dtype == torch.float32
    for b in range(H.shape[0]):
        support, explained, coef = reference_somp(H[b].numpy(), D.numpy(), 10)
        np.testing.assert_array_equal(fitted.support_[b].numpy(), support)
        np.testing.assert_allclose(fitted.explained_variance_[b].numpy(), explained, rtol=1e-3)
        np.testing.assert_allclose(fitted.coef_[b].numpy(), coef, rtol=0, atol=1e-3)


def test_batched_equals_per_matrix_and_reconstruct():
    H, D = random_problem(2, B=4)
    batched = SOMP(n_atoms=6).fit(H, D)
    for b in range(H.shape[0]):
        single = SOMP(n_atoms=6).fit(H[b], D)
        assert single.support_.shape == (6,) and single.coef_.shape == (H.shape[1], 6)
        torch.testing.assert_close(batched.support_[b], single.support_, rtol=0, atol=0)
        torch.testing.assert_close(batched.explained_variance_[b], single.explained_variance_, rtol=1e-12, atol=0)
        torch.testing.assert_close(batched.coef_[b], single.coef_, rtol=0, atol=1e-12)
    # the reconstruction's residual gives back the score
    residual = H - batched.reconstruct()
    centred = H - H.mean(dim=1, keepdim=True)
    score = 1 - residual.square().sum((1, 2)) / centred.square().sum((1, 2))
    torch.testing.assert_close(score, batched.score_, rtol=1e-10, atol=0)


def test_one_step_on_one_sample_is_the_logit_lens_argmax():
    H, D = random_problem(3, B=1, n=1)
    h = H[0, 0]
    fitted = SOMP(n_atoms=1, center=False).fit(h[None], D)
    unit = D / D.norm(dim=1, keepdim=True)
    assert fitted.support_.tolist() == [int((unit @ h).abs().argmax())]


def test_planted_sparse_signal_is_recovered():
    g = torch.Generator().manual_seed(4)
    M, d, n = 200, 128, 100
    D = torch.randn(M, d, generator=g)
    planted = [5, 33, 71, 120, 199]
    unit = D / D.norm(dim=1, keepdim=True)
    H = torch.randn(n, 5, generator=g) @ unit[planted] + 0.01 * torch.randn(n, d, generator=g)
    fitted = SOMP(n_atoms=5).fit(H, D)
    assert sorted(fitted.support_.tolist()) == planted
    assert fitted.score_ > 0.99


def test_logit_lens_scores():
    H, D = random_problem(5)
    unit = D / D.norm(dim=1, keepdim=True)
    expected = torch.stack([(H[b] @ unit.T).mean() for b in range(H.shape[0])])
    torch.testing.assert_close(logit_lens_scores(H, D), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(logit_lens_scores(H[1], D), expected[1], rtol=1e-12, atol=1e-12)


def test_constant_signal_explains_nothing():
    H, D = random_problem(9, B=2)
    H[1] = H[1, :1]
    fitted = SOMP(n_atoms=4).fit(H, D)
    torch.testing.assert_close(fitted.explained_variance_[1], torch.zeros(4, dtype=H.dtype), rtol=0, atol=0)
    torch.testing.assert_close(fitted.reconstruct()[1], H[1], rtol=0, atol=1e-12)
    assert fitted.score_[0] > 0


def test_collinear_atoms_are_not_picked_twice():
    H, D = random_problem(6, B=2, d=6, M=4)
    D = torch.cat([D, D[:1] * (1 + 1e-12), D[1:2] + 1e-10 * D[2:3]])  # near-copies of atoms 0 and 1
    with pytest.warns(UserWarning, match="stopped at 4 of 6"):
        fitted = SOMP(n_atoms=6).fit(H, D)
    assert fitted.support_.shape == (2, 4)
    for support in fitted.support_.tolist():
        assert not {0, 4} <= set(support) and not {1, 5} <= set(support)
    assert torch.isfinite(fitted.coef_).all()


def test_bad_inputs():
    H, D = random_problem(7, M=5)
    with pytest.warns(UserWarning, match="n_atoms=9 exceeds the dictionary size 5"):
        fitted = SOMP(n_atoms=9).fit(H, D)
    assert [sorted(s) for s in fitted.support_.tolist()] == [list(range(5))] * 3  # every atom, once
    for b in range(3):
        np.testing.assert_allclose(fitted.score_[b].item(), reference_somp(H[b].numpy(), D.numpy(), 5)[1][-1],
                                   rtol=1e-5)
    D[[1, 3]] = 0
    with pytest.raises(ValueError, match="zero norm: 1, 3"):
        SOMP(n_atoms=2).fit(H, D)
    H[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        SOMP(n_atoms=2).fit(H, torch.randn(5, 20))
    with pytest.raises(ValueError, match="d=20.*d=7"):
        SOMP(n_atoms=2).fit(torch.randn(4, 20), torch.randn(5, 7))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    H, D = random_problem(8, B=4, dtype=torch.float32)
    cpu = SOMP(n_atoms=10).fit(H, D)
    gpu = SOMP(n_atoms=10, device="cuda").fit(H.cuda(), D)
    assert gpu.coef_.is_cuda
    torch.testing.assert_close(gpu.support_.cpu(), cpu.support_, rtol=0, atol=0)
    torch.testing.assert_close(gpu.explained_variance_.cpu(), cpu.explained_variance_, rtol=1e-4, atol=0)
    torch.testing.assert_close(gpu.reconstruct().cpu(), cpu.reconstruct(), rtol=0, atol=1e-4)
