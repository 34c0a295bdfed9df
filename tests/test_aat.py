"""AAT (attention-weight ablation search): the operator, the late-layer cache, both searches on a
planted problem, the held-out evaluation and bad inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clipinterp import interventions as iv
from clipinterp.evaluation import retrieval_recall
from clipinterp.model.loading import data_dir, load
from clipinterp.organism.scoring import score_aat
from clipinterp.methods.aat import (AATResult, GeneticSearch, GradientSearch, LateLayerCache, PairedData,
                                    _gate_hooks, _pair_batches, attention_ablation, evaluate_heads, plot_head_scan, single_head_scan)

TOL = 1e-5
PLANTED = ["L1.H2", "L2.H0"]


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine two threads can make
    each small op ~100x slower (thread hand-offs); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def data(pixels):
    return PairedData(pixels, ["a cat", "a dog", "a photo", "of a cat"])


@pytest.fixture()
def planted(tiny):
    """16 images whose captions embed exactly as the images do with PLANTED suppressed (set in the
    text tower's per-text cache), so suppressing PLANTED is the best edit."""
    torch.manual_seed(5)
    pixels = torch.randn(16, 3, 32, 32)
    captions = [f"caption {i}" for i in range(16)]
    target = tiny.with_interventions(attention_ablation(PLANTED)).encode_image(pixels)
    tiny.text._cache.update(zip(captions, target))
    tiny.text.logit_scale = 100.0
    return PairedData(pixels, captions), target


def test_late_layer_run_equals_full_forward(tiny, pixels, data):
    cache = LateLayerCache(tiny, data, start=1, batch_size=3)  # 2 chunks
    edits = [[], [attention_ablation(["L1.H0", "L2.H3"])], [attention_ablation("L1.H1", "identity", cls_only=True)],
             [attention_ablation(["L2.H2"], "uniform"), iv.mean(["L1.H3"], pixels)]]
    full_original = tiny.encode_image(pixels)
    for edit in edits:
        ours = cache.embed(edit)
        full = tiny.with_interventions(*edit).encode_image(pixels)
        assert rel(ours, full) < TOL, edit
        assert not edit or rel(ours, full_original) > 1e-3  # the edit does something


def test_only_edited_layers_take_the_explicit_attention_path(tiny, data, monkeypatch):
    cache = LateLayerCache(tiny, data, start=1, batch_size=2)  # 2 chunks over layers 1 and 2
    calls = []
    fused = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or fused(*a, **k))
    cache.embed([attention_ablation("L2.H1")])
    assert len(calls) == 2  # layer 1 fused in both chunks, layer 2 explicit; layer 0 not run
    calls.clear()
    cache.embed()
    assert len(calls) == 4


def test_default_operator_is_zero_ablation_and_folds_into_weights(tiny, pixels):
    result = AATResult([(2, 0), "L1.H2"])
    assert result.heads == PLANTED  # a plain, sorted list of names
    edited = result.apply(tiny)(pixels)
    assert rel(edited, tiny.with_interventions(iv.zero(PLANTED))(pixels)) < TOL
    assert rel(edited, result.fold(tiny)(pixels)) < TOL
    assert rel(edited, tiny(pixels)) > 1e-3
    assert rel(AATResult([]).apply(tiny)(pixels), tiny(pixels)) == 0
    last = tiny.with_interventions(attention_ablation("L2.H1"))(pixels)  # only CLS reaches the embedding
    assert rel(tiny.with_interventions(attention_ablation("L2.H1", cls_only=True))(pixels), last) < TOL
    with pytest.raises(ValueError, match="fold"):
        AATResult(PLANTED, variant="identity").fold(tiny)


@pytest.mark.parametrize("variant", ["scale", "identity", "uniform"])
@pytest.mark.parametrize("cls_only", [False, True])
def test_gates_interpolate_between_model_and_operator(tiny, pixels, variant, cls_only):
    layers = [1, 2]
    everything = [(layer, h) for layer in layers for h in range(4)]
    with tiny.hooks(fwd_hooks=_gate_hooks(torch.zeros(2, 4), layers, variant, cls_only)):
        closed = tiny(pixels)
    with tiny.hooks(fwd_hooks=_gate_hooks(torch.ones(2, 4), layers, variant, cls_only)):
        opened = tiny(pixels)
    assert rel(closed, tiny.with_interventions(attention_ablation(everything, variant, cls_only))(pixels)) < TOL
    assert rel(opened, tiny(pixels)) < TOL


def test_single_head_scan_and_heatmap(tiny, pixels, data):
    scan = single_head_scan(tiny, data, metric="recall", layers=[1, -1], progress=False)
    assert list(scan.name) == [f"L{layer}.H{h}" for layer in (1, 2) for h in range(4)]
    row = scan.iloc[5]  # L2.H1, checked against the full forward and clipinterp.evaluation
    full = retrieval_recall(tiny.with_interventions(attention_ablation("L2.H1")), pixels, data.captions)
    expected = full[["i2t@1", "t2i@1", "i2t@5", "t2i@5", "i2t@10", "t2i@10"]].to_numpy().mean()
    assert row.metric == pytest.approx(expected, abs=1e-6)
    assert row.delta == pytest.approx(row.metric - scan.attrs["baseline"], abs=1e-12)
    figure = plot_head_scan(scan)
    assert figure.axes[0].images[0].get_array().shape == (2, 4)
    with pytest.warns(RuntimeWarning, match="no signal"):
        single_head_scan(tiny, data, metric=lambda image, targets: 0.5, layers=[2], progress=False)


def test_genetic_search_finds_planted_heads(tiny, planted):
    data, target = planted

    def closeness(image, targets):  # 1 exactly at the planted edit
        return (image * target).sum(-1).mean().item()

    ga = GeneticSearch(population=10, generations=6, layers=[1, 2], metric=closeness, seed=1, progress=False)
    ga.fit(tiny, data)
    assert ga.heads_ == PLANTED
    assert ga.best_mask_.nonzero().tolist() == [[1, 2], [2, 0]]
    assert ga.result_.score == pytest.approx(1.0, abs=1e-5) and ga.result_.baseline < 0.999
    assert np.all(np.diff(ga.history_.best) >= 0)  # elitism: the best never gets worse
    again = GeneticSearch(population=10, generations=6, layers=[1, 2], metric=closeness, seed=1, progress=False)
    assert again.fit(tiny, data).history_.equals(ga.history_)  # seeded and deterministic
    with pytest.raises(ValueError, match="no signal"):
        GeneticSearch(population=4, generations=1, layers=[2], metric=lambda image, targets: 0.5,
                      progress=False).fit(tiny, data)


def test_gradient_search_learns_gates_of_planted_heads(tiny, planted):
    data, _ = planted
    bp = GradientSearch(steps=60, layers=[1, 2], batch_size=16, progress=False).fit(tiny, data)
    assert bp.heads_ == PLANTED and torch.equal(bp.mask_, bp.gates_ < bp.threshold)
    assert bp.gates_[1:].flatten().argsort()[:2].tolist() == [2, 4]  # L1.H2, L2.H0 have the lowest gates
    assert torch.all(bp.gates_[0] == 1)  # not searched
    assert bp.loss_curve_[-1] < bp.loss_curve_[0]
    assert all(p.requires_grad and p.grad is None for p in tiny.parameters())  # frozen, then restored
    sparse = GradientSearch(steps=5, sparsity=50.0, layers=[2], batch_size=16, progress=False).fit(tiny, data)
    assert sparse.heads_ == [] and torch.all(sparse.gates_[2] > 0.95)  # the penalty keeps every head


def test_pair_batches_hold_each_image_once():
    image_of_caption = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    batches = _pair_batches(image_of_caption, 3, torch.Generator().manual_seed(0))
    for _ in range(6):
        image_idx, caption_idx = next(batches)
        assert len(image_idx) == 3 and len(set(image_idx.tolist())) == 3  # the 1-image remainder is skipped
        assert torch.equal(image_of_caption[caption_idx], image_idx)


def test_evaluate_heads_table(tiny, pixels):
    torch.manual_seed(9)
    test = PairedData(torch.randn(6, 3, 32, 32), ["a cat", "a dog", "a photo", "of a cat", "cat", "dog"],
                      labels=[0, 1, 0, 1, 0, 1], class_names=["cat", "dog"])
    result = AATResult(["L2.H0"], layers=[1, 2])
    table = evaluate_heads(tiny, result, test, reference=pixels, seed=3)
    assert list(table.method) == ["original", "aat", "zero", "mean", "random"]
    assert list(table.n_heads) == [0, 1, 1, 1, 1]
    assert table.heads[4].split(".")[0] in ("L1", "L2")  # drawn from the searched layers
    original = retrieval_recall(tiny, test.images, test.captions)
    assert table.loc[0, "t2i@5"] == pytest.approx(original["t2i@5"].item())
    metrics = ["i2t@1", "t2i@1", "i2t@5", "t2i@5", "mean_recall", "accuracy"]
    assert np.allclose(table.loc[1, metrics].astype(float), table.loc[2, metrics].astype(float))  # scale == zero
    assert table.loc[0, "mean_recall"] == pytest.approx(table.loc[0, ["i2t@1", "t2i@1", "i2t@5", "t2i@5", "i2t@10",
                                                                      "t2i@10"]].mean())
    same = evaluate_heads(tiny, ["L2.H0"], test, reference=pixels, random_layers=[1, 2], seed=3)
    assert same.heads[4] == table.heads[4]  # seeded


def test_bad_inputs(tiny, pixels, data):
    with pytest.raises(ValueError, match="empty"):
        PairedData(pixels[:0], [])
    with pytest.raises(ValueError, match="4 images but 3 captions"):
        PairedData(pixels, ["a", "b", "c"])
    with pytest.raises(ValueError, match="class_names"):
        PairedData(pixels, labels=[0, 1, 0, 1])
    with pytest.raises(ValueError, match="index the 2 class names"):
        PairedData(pixels, labels=[0, 1, 0, 2], class_names=["cat", "dog"])
    with pytest.raises(ValueError, match="out of range"):
        AATResult(["L7.H0"]).apply(tiny)
    with pytest.raises(ValueError, match="out of range"):
        evaluate_heads(tiny, [(0, 9)], data)
    with pytest.raises(ValueError, match="out of range"):
        GeneticSearch(layers=[5], progress=False).fit(tiny, data)
    with pytest.raises(ValueError, match="unknown AAT variant"):
        GeneticSearch(variant="zero")
    with pytest.raises(ValueError, match="needs labels"):
        single_head_scan(tiny, data, metric="zero_shot", progress=False)
    with pytest.raises(ValueError, match="no captions"):
        GradientSearch(progress=False).fit(tiny, PairedData(pixels, labels=[0, 1, 0, 1], class_names=["cat", "dog"]))


# ---------------------------------------------------------------------------- the shapes organism
@pytest.mark.slow
def test_ga_and_bp_find_the_spurious_cue_heads_of_the_organism():
    """``score_aat`` (what methods.json records): searched on 200 shifted validation pairs (layers
    2-5), scored on 400 held-out shifted pairs. The model card's spurious-cue heads are L4.H2,
    L4.H3 and L5.H3. Measured: BP picks exactly those three (held-out mean recall 0.715 -> 0.747,
    shape accuracy 0.717 -> 0.830; random heads as many: 0.720, 0.730); GA finds L4.H2 with L3.H2
    and L4.H1 (0.731, 0.738). Asserted: both find the strongest spurious head and raise held-out
    recall and shape accuracy; every head BP picks is a spurious-cue head, and BP beats
    its random control."""
    truth = json.loads((data_dir() / "shapes-clip" / "ground_truth.json").read_text())
    record = score_aat(load("shapes-clip"), truth)
    strongest = truth["spurious_heads"][0]
    for name in ("ga", "bp"):
        found, recall, accuracy = (record[name][k] for k in ("heads", "held_out_mean_recall", "held_out_shape_accuracy"))
        assert strongest in found, (name, found)
        assert recall["aat"] >= recall["original"] + 0.005, name
        assert accuracy["aat"] > accuracy["original"], name
    bp = record["bp"]
    assert set(bp["heads"]) <= set(truth["spurious_heads"])
    assert bp["held_out_mean_recall"]["aat"] > bp["held_out_mean_recall"]["random"]
    assert bp["held_out_shape_accuracy"]["aat"] > bp["held_out_shape_accuracy"]["random"]
