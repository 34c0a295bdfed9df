"""Head Pursuit: head ranking, head descriptions, editing and its controls; bad input; the organism."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import clipinterp
from clipinterp.heads import parse_head
from clipinterp.interventions import scale
from clipinterp.methods import (SOMP, describe_head, edit_heads, editing_table, head_pursuit, logit_lens_scores,
                                random_control_sets, top_heads)
from clipinterp.late import LateRunner
from clipinterp.model.loading import data_dir

CONCEPT = ["cat", "dog", "a photo of a cat", "of a dog"]


@pytest.fixture()
def decomposition(tiny, pixels):
    return clipinterp.decompose(tiny, pixels, convention="centered", progress=False)


def test_head_pursuit_table(tiny, pixels, decomposition):
    table = head_pursuit(tiny, pixels, CONCEPT)
    assert list(table.columns) == ["layer", "head", "name", "score", "explained", "logit_lens", "rank",
                                   "explained_rank", "logit_lens_rank"]
    assert len(table) == 12 and table["name"].iloc[5] == "L1.H1"
    assert table["score"].between(0, 1).all()
    assert sorted(table["rank"]) == list(range(1, 13))
    assert table.loc[table["rank"] == 1, "score"].item() == table["score"].max()
    # the same numbers from a decomposition, and from SOMP / the logit lens on one head directly
    again = head_pursuit(decomposition, concept=CONCEPT, model=tiny)
    pd.testing.assert_frame_equal(table, again)
    D = tiny.encode_text(CONCEPT)
    signal = decomposition.heads[:, 2, 3]
    row = table[table["name"] == "L2.H3"]
    assert row["score"].item() == pytest.approx(SOMP(4).fit(signal, D).score_.item(), rel=1e-5)
    assert row["logit_lens"].item() == pytest.approx(logit_lens_scores(signal, D).item(), rel=1e-5)
    # explained: the fraction times the head's variance, i.e. |H_c|^2 - |R|^2 per image
    fitted = SOMP(4).fit(signal, D)
    residual = (signal - fitted.reconstruct()).square().sum() / len(signal)
    variance = (signal - signal.mean(0)).square().sum() / len(signal)
    assert row["explained"].item() == pytest.approx((variance - residual).item(), rel=1e-4)
    only = head_pursuit(decomposition, concept=D, layers=[-1])  # embeddings need no model
    assert list(only["layer"]) == [2] * 4
    np.testing.assert_allclose(only["score"], table["score"].iloc[8:], rtol=1e-6)


def test_top_heads_and_heatmap(tiny, pixels):
    table = head_pursuit(tiny, pixels, CONCEPT)
    best = top_heads(table, 3)
    assert best[0] == tuple(table.loc[table["rank"] == 1, ["layer", "head"]].iloc[0])
    best_lens = table.loc[table["logit_lens_rank"] == 1, ["layer", "head"]].iloc[0]
    assert top_heads(table, 2, "logit_lens")[0] == tuple(best_lens)
    best_explained = table.loc[table["explained_rank"] == 1, ["layer", "head"]].iloc[0]
    assert top_heads(table, 1, "explained") == [tuple(best_explained)]
    with pytest.raises(ValueError, match="expected 'score', 'explained' or 'logit_lens'"):
        top_heads(table, 1, "rank")
    with pytest.raises(ValueError, match="out of range"):
        top_heads(table, 13)
    from clipinterp.methods import plot_head_pursuit

    fig = plot_head_pursuit(table, "logit_lens", k=3)
    assert fig.axes


def test_bad_input(tiny, pixels, decomposition):
    for empty in ([], ["", "  "], ()):
        with pytest.raises(ValueError, match="no words"):
            head_pursuit(tiny, pixels, empty)
    with pytest.warns(UserWarning, match="exceeds the concept's 4 atoms"):
        capped = head_pursuit(decomposition, concept=CONCEPT, model=tiny, n_atoms=50)
    pd.testing.assert_frame_equal(capped, head_pursuit(decomposition, concept=CONCEPT, model=tiny, n_atoms=4))
    D = tiny.encode_text(CONCEPT)
    D[2] = 0
    with pytest.raises(ValueError, match="zero norm: 2"):
        head_pursuit(decomposition, concept=D)
    broken = clipinterp.decompose(tiny, pixels, convention="centered", progress=False)
    broken.heads[1, 0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        head_pursuit(broken, concept=CONCEPT, model=tiny)
    with pytest.raises(ValueError, match="needs the model"):
        head_pursuit(decomposition, concept=CONCEPT)
    with pytest.raises(ValueError, match="needs images"):
        head_pursuit(tiny, concept=CONCEPT)
    with pytest.raises(ValueError, match="width"):
        head_pursuit(decomposition.project(D[:2]), concept=CONCEPT, model=tiny)


def test_describe_head(tiny, decomposition):
    bank = (CONCEPT + ["a", "photo", "of"], tiny.encode_text(CONCEPT + ["a", "photo", "of"]))
    table = describe_head(decomposition, ["L2.H1", (0, 3)], bank, n_atoms=3)
    assert len(table) == 6 and list(table["name"]) == ["L0.H3"] * 3 + ["L2.H1"] * 3
    assert list(table["rank"]) == [0, 1, 2] * 2
    assert (table["weight"] > 0).all() and set(table["text"]) <= set(bank[0])
    assert (table.groupby("name")["explained_variance"].diff().dropna() >= -1e-6).all()
    fitted = SOMP(3).fit(decomposition.heads[:, 2, 1], bank[1])
    assert list(table["text_index"].iloc[3:]) == fitted.support_.tolist()


def test_edit_heads_and_late_runner(tiny, pixels):
    heads = ["L1.H2", "L2.H0"]
    edited = edit_heads(tiny, heads, alpha=-1.0).encode_image(pixels)
    expected = tiny.with_interventions(scale(-1.0, heads)).encode_image(pixels)
    torch.testing.assert_close(edited, expected)
    assert not torch.allclose(edited, tiny.encode_image(pixels))
    runner = LateRunner(tiny, pixels.split(3), start=1, batch_size=3)
    torch.testing.assert_close(runner.embed([scale(-1.0, heads)]), edited, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(runner.embed(), tiny.encode_image(pixels), rtol=1e-5, atol=1e-6)
    with edit_heads(tiny, heads, 5.0):
        enhanced = tiny.encode_image(pixels)
    torch.testing.assert_close(runner.embed([scale(5.0, heads)]), enhanced, rtol=1e-5, atol=1e-6)
    runner.advance(2)  # the cache moves on unedited: edits of layer 2 still come out exact
    torch.testing.assert_close(runner.embed([scale(-1.0, ["L2.H0"])]),
                               edit_heads(tiny, "L2.H0").encode_image(pixels), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="only forward"):
        runner.advance(1)
    with pytest.raises(ValueError, match=r"starts at layer 2, so it cannot apply edits at \['blocks.1.attn.hook_z'\]"):
        runner.embed([scale(-1.0, ["L1.H2", "L2.H0"])])  # layer 1 is behind the cache: it would be skipped


def test_random_control_sets():
    selected = [(0, 1), (2, 0), (2, 3), (5, 2)]
    sets = random_control_sets(selected, 6, 4, n_sets=10, rng=np.random.default_rng(1))
    assert len(sets) == 10 and len({tuple(s) for s in sets}) > 1
    for heads in sets:
        assert len(heads) == 4 and not set(heads) & set(selected)
        assert sorted(layer for layer, _ in heads) == [0, 2, 2, 5]
    with pytest.warns(UserWarning, match="2 of the 3 random heads come from neighbouring layers"):
        crowded = random_control_sets([(1, 0), (1, 1), (1, 2)], 3, 4, n_sets=5)
    for heads in crowded:
        assert [layer for layer, _ in heads].count(1) == 1 and len(set(heads)) == 3
    with pytest.raises(ValueError, match="too few others"):
        random_control_sets([(0, 0), (0, 1), (0, 2)], 1, 5)


def test_editing_table_shows_progress(tiny, pixels, capsys):
    editing_table(tiny, pixels, {"animal": ([0, 1, 1, 0], ["cat", "dog"])}, ks=(1,), n_random=2)
    assert "edited passes: 100%" in capsys.readouterr().err  # pursuit, 2 random sets and the logit lens
    editing_table(tiny, pixels, {"animal": ([0, 1, 1, 0], ["cat", "dog"])}, ks=(1,), n_random=2, progress=False)
    assert capsys.readouterr().err == ""


def test_editing_table_shape(tiny, pixels):
    from clipinterp.viz import pursuit_summary, pursuit_table_style

    concepts = {"animal": ([0, 1, 1, 0], ["cat", "dog"]), "words": ([2, 0, 1, 1], ["a", "photo", "of"])}
    table = editing_table(tiny, pixels, concepts, ks=(1, 2), n_random=3)
    assert len(table) == 2 * 2 * 2 * 3  # concepts x evaluated x k x methods
    assert list(pd.unique(table["method"])) == ["pursuit", "random", "logit_lens"]
    assert set(table.loc[table["method"] == "random", "n"]) == {3}
    assert set(table.loc[table["method"] != "random", "n"]) == {1}
    assert (table["scope"] == np.where(table["concept"] == table["evaluated"], "target", "other")).all()
    assert table[["median", "q25", "q75", "baseline"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (table["q25"] <= table["median"]).all() and (table["median"] <= table["q75"]).all()
    pursuit = table[(table["method"] == "pursuit") & (table["concept"] == "animal")]
    assert pursuit["heads"].iloc[0].count("L") == 1 and pursuit["heads"].iloc[-1].count("L") == 2
    ranking = head_pursuit(tiny, pixels, ["cat", "dog"])
    assert pursuit["heads"].iloc[-1] == ",".join(f"L{l}.H{h}" for l, h in top_heads(ranking, 2))
    by_explained = editing_table(tiny, pixels, {"animal": concepts["animal"]}, ks=(2,), n_random=1, rank_by="explained")
    chosen = by_explained.loc[by_explained["method"] == "pursuit", "heads"].iloc[0]
    assert chosen == ",".join(f"L{l}.H{h}" for l, h in top_heads(ranking, 2, "explained"))
    with pytest.raises(ValueError, match="rank_by='logit_lens'"):
        editing_table(tiny, pixels, concepts, rank_by="logit_lens")
    # editing one concept's heads while scoring both gives exactly that concept's rows
    words_only = editing_table(tiny, pixels, concepts, ks=(1, 2), n_random=3, targets=["words"])
    pd.testing.assert_frame_equal(words_only.reset_index(drop=True),
                                  table[table["concept"] == "words"].reset_index(drop=True), check_exact=True)
    with pytest.raises(ValueError, match=r"targets \['cats'\] are not among"):
        editing_table(tiny, pixels, concepts, targets=["cats"])
    # centred edits scale each head's deviation from its mean over the reference (labels: the
    # unedited predictions, so that an edit can only lower the accuracy)
    assert not table["centered"].any()
    classes = tiny.encode_text(["cat", "dog"])
    predicted = (tiny.encode_image(pixels) @ classes.T).argmax(1)
    centred = editing_table(tiny, pixels, {"animal": (predicted.tolist(), ["cat", "dog"])}, ks=(2,), n_random=1,
                            alpha=10.0, reference=pixels)
    row = centred[centred["method"] == "pursuit"].iloc[0]
    heads = [parse_head(h) for h in row["heads"].split(",")]
    by_hand = {ref is None: (tiny.with_interventions(scale(10.0, heads, reference=ref)).encode_image(pixels) @ classes.T)
               .argmax(1).eq(predicted).float().mean().item() for ref in (None, pixels)}
    assert by_hand[True] != by_hand[False]  # plain and centred differ here, so the check below can fail
    assert centred["centered"].all() and row["median"] == pytest.approx(by_hand[False])
    target = table[(table["concept"] == "animal") & (table["scope"] == "target")]
    assert list(pursuit_summary(target)["method"]) == ["pursuit", "random", "logit_lens"] * 2
    assert pursuit_table_style(target).shape == (2, 3)
    normalised = editing_table(tiny, pixels, {"animal": concepts["animal"]}, ks=(1,), n_random=2, normalize=True)
    row = normalised.iloc[0]
    assert row["median"] == pytest.approx(table.iloc[0]["median"] / row["baseline"])
    with pytest.raises(ValueError, match="labels for 4 images"):
        editing_table(tiny, pixels, {"animal": ([0, 1], ["cat", "dog"])})
    with pytest.raises(ValueError, match="index its 2 class prompts"):
        editing_table(tiny, pixels, {"animal": ([0, 1, 2, 0], ["cat", "dog"])})


def test_organism_suppression_ordering():
    """On the shipped shapes organism, for every attribute with specialised heads in the model
    card's ground truth (shape, colour, count), suppressing (alpha = -1) its top-k Head Pursuit
    heads ranked by ``explained`` hurts that attribute more than random same-layer controls (by at
    least 0.05) and than the logit-lens top-k (by at least 0.02), and hurts it at least 1.5 times
    as much as the other learned attributes on average. Figures are means over k = 1, 2, 4
    (methods.json, 300 test images, seed 1), pursuit vs random median vs logit lens: shape 0.29 vs
    0.65 vs 0.60; colour 0.25 vs 0.86 vs 0.30; count 0.12 vs 0.95 vs 0.49. The others lose 0.36
    on average under the shape edit (its top heads by ``explained`` are L3.H3 and L2.H0, the
    shared early shape pipeline that the ground truth shows costs size and count too), 0.19 under
    colour's and 0.26 under count's.

    Ranked by the paper's score (a fraction of each head's variance) pursuit is more targeted
    (others lose 0.13 under the shape edit) and beats random on all three and the logit lens on
    shape and count, but not on colour (0.41 vs 0.30): the score ranks L2.H3, a low-norm head
    whose small output is mostly colour, just above the planted colour head L5.H0 (0.53 vs 0.50).
    That ranking is recorded in methods.json, not asserted here.
    """
    from clipinterp.organism import world
    from clipinterp.organism.scoring import attribute_concepts, learned_attributes

    model = clipinterp.load("shapes-clip")
    truth = json.loads((data_dir() / "shapes-clip" / "ground_truth.json").read_text())
    specialised = [a for a, heads in truth["specialised"].items() if heads]
    learned = learned_attributes(truth)
    assert len(specialised) >= 3 and set(specialised) <= set(learned)
    batch = world.generate("test", 300, seed=1)
    concepts = attribute_concepts(learned, batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # few free heads per layer: neighbours fill in
        table = editing_table(model, batch.images, concepts, ks=(1, 2, 4), n_random=10, seed=0,
                              rank_by="explained", targets=specialised)  # every learned attribute is scored
    accuracy = table.groupby(["concept", "evaluated", "method"])["median"].mean()  # mean over k
    baseline = table.drop_duplicates("evaluated").set_index("evaluated")["baseline"]
    for target in specialised:
        pursuit = accuracy[target, target, "pursuit"]
        assert baseline[target] > 0.9
        assert pursuit < accuracy[target, target, "random"] - 0.05, target
        assert pursuit < accuracy[target, target, "logit_lens"] - 0.02, target
        others = [baseline[o] - accuracy[target, o, "pursuit"] for o in learned if o != target]
        assert baseline[target] - pursuit >= 1.5 * sum(others) / len(others), target


def test_organism_enhancement_restores_faded_colour():
    """Enhancement where there is headroom: on the organism's test images faded 80% of the way to
    grey (``world.faded``; colour accuracy falls from 1.0 to about 0.53), scaling colour's top-k
    Head Pursuit heads (ranked by ``explained``) by alpha = 1.5 raises colour accuracy above the
    unedited faded images and above random same-layer controls by at least 0.1 each, and at
    least to the logit lens's level. Measured in methods.json (means over k = 1, 2, 4, 300 test
    images, seed 1): about 0.72 for pursuit against 0.53 unedited, 0.51 random and 0.69 logit lens.
    At alpha 3 or 5 a single head overshoots (the notes have the sweep).
    """
    from clipinterp.organism import world
    from clipinterp.organism.scoring import FADE, FADED_ALPHA, attribute_concepts

    model = clipinterp.load("shapes-clip")
    batch = world.generate("test", 300, seed=1)
    concepts = attribute_concepts(["color"], batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table = editing_table(model, world.faded(batch.images, FADE), concepts, ks=(1, 2, 4), alpha=FADED_ALPHA,
                              n_random=10, seed=0, rank_by="explained")
    accuracy = table.groupby("method")["median"].mean()  # one concept: mean over k
    baseline = float(table["baseline"].iloc[0])
    assert baseline < 0.8  # the fade leaves headroom
    assert accuracy["pursuit"] > baseline + 0.1
    assert accuracy["pursuit"] > accuracy["random"] + 0.1
    assert accuracy["pursuit"] >= accuracy["logit_lens"]
