import matplotlib

matplotlib.use("Agg")

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.backend_bases import MouseEvent  # noqa: E402

import clipinterp  # noqa: E402
from clipinterp.viz import AblationPanel, ConceptHeadMap, HeadExplorer  # noqa: E402

CLASSES = ["cat", "dog", "bird"]
COLAB_WIDGETS = Path(__file__).parent / "artifacts" / "ipywidgets7"  # `make widgets7`


def png_outputs(output):
    return [o for o in output.outputs if "image/png" in o.get("data", {})]


def textspan_frame(n_layers=3, n_heads=4, n_texts=3):
    """A TextSpan-shaped frame with different texts for every head."""
    rows = [{"layer": layer, "head": h, "rank": r, "text": f"{'abcdefgh'[r + h]}{layer}{h} photo",
             "text_index": r, "variance_explained": 0.2 * (r + 1)}
            for layer in range(n_layers) for h in range(n_heads) for r in range(n_texts)]
    return pd.DataFrame(rows)


@pytest.fixture()
def explorer_parts(tiny, pixels):
    return tiny, pixels, clipinterp.decompose(tiny, pixels)


# ---------------------------------------------------------------- HeadExplorer
def test_head_explorer_follows_the_head(explorer_parts):
    model, pixels, dec = explorer_parts
    ts = textspan_frame()
    ccs = pd.DataFrame({"layer": [0], "head": [2], "label": ["animals"], "texts": [[]], "judgements": [[]],
                        "ccs": [4.0]})
    explorer = HeadExplorer(model, pixels, dec, textspan_df=ts, ccs_df=ccs, top_k=3)
    assert explorer.current_texts == ["a00 photo", "b00 photo", "c00 photo"]
    assert explorer.current_ccs is None and explorer.text.value == "a00 photo"
    explorer.head.value = 2
    assert explorer.current_texts == ["c02 photo", "d02 photo", "e02 photo"]
    assert (explorer.current_ccs, explorer.current_label) == (4.0, "animals")
    assert "c02 photo" in explorer.texts_table.value and "0.600" in explorer.texts_table.value
    assert "L0.H2" in explorer.summary.value and "animals" in explorer.summary.value
    assert explorer.text.value == "c02 photo" and list(explorer.suggestions.options) == explorer.current_texts
    # top images: the head's outputs projected on its top text, best first
    scores = dec.heads[:, 0, 2] @ model.encode_text(["c02 photo"])[0]
    assert explorer.top_images == torch.argsort(scores, descending=True)[:3].tolist()
    assert explorer.top_scores == pytest.approx(sorted(scores.tolist(), reverse=True)[:3], abs=1e-6)
    assert len(png_outputs(explorer.top_images_output)) == 1
    assert len(png_outputs(explorer.heatmap_output)) == 1
    explorer.select("L2.H1")  # a layer and head at once
    assert explorer.selected_head == (2, 1) and explorer.current_texts[0] == "b21 photo"
    # a head without TextSpan texts: the text box shows the suggestion the dropdown shows
    explorer = HeadExplorer(model, pixels, dec, textspan_df=ts[ts["layer"] != 1], top_k=3,
                            texts_for_heatmap=["a red circle"])
    explorer.select("L1.H0")
    assert explorer.current_texts == [] and explorer.text.value == explorer.suggestions.value == "a red circle"


def test_head_explorer_heatmap_matches_the_token_decomposition(explorer_parts):
    model, pixels, dec = explorer_parts
    explorer = HeadExplorer(model, pixels, dec, texts_for_heatmap=["a cat", "a dog"])
    assert explorer.current_texts == [] and explorer.text.value == "a cat"
    explorer.select("L2.H3")
    explorer.image.value = 2
    tokens = clipinterp.decompose(model, pixels[2:3], tokens=True, layers=[2]).tokens[0, 0, 3]  # [T, d]
    expected = (tokens[1:] @ model.encode_text(["a cat"])[0]).reshape(4, 4)
    torch.testing.assert_close(explorer.current_heatmap, expected, rtol=1e-4, atol=1e-5)
    before = png_outputs(explorer.heatmap_output)
    explorer.suggestions.value = "a dog"
    assert explorer.text.value == "a dog"
    expected = (tokens[1:] @ model.encode_text(["a dog"])[0]).reshape(4, 4)
    torch.testing.assert_close(explorer.current_heatmap, expected, rtol=1e-4, atol=1e-5)
    assert png_outputs(explorer.heatmap_output) != before
    explorer.text.value = ""
    torch.testing.assert_close(explorer.current_heatmap, tokens[1:].norm(dim=-1).reshape(4, 4), rtol=1e-4, atol=1e-5)
    # without TextSpan results the top images are those the head writes into most strongly
    assert explorer.top_images == torch.argsort(dec.heads[:, 2, 3].norm(dim=-1), descending=True).tolist()


def test_head_explorer_uses_precomputed_tokens(explorer_parts):
    model, pixels, _ = explorer_parts
    dec = clipinterp.decompose(model, pixels, tokens=True, layers=[1])
    dec.tokens = dec.tokens * 0 + 1.0  # recognisable: computed from these, not recomputed
    explorer = HeadExplorer(model, pixels, dec)
    explorer.select((1, 0))
    torch.testing.assert_close(explorer.current_heatmap, torch.full((4, 4), dec.tokens.shape[-1] ** 0.5))
    explorer.select((0, 0))  # layer 0 has no stored tokens: computed on demand
    assert not torch.allclose(explorer.current_heatmap, torch.full((4, 4), dec.tokens.shape[-1] ** 0.5))


def test_head_explorer_checks_its_inputs(explorer_parts):
    model, pixels, dec = explorer_parts
    with pytest.raises(ValueError, match="decomposition.heads"):
        HeadExplorer(model, pixels[:2], dec)
    with pytest.raises(ValueError, match="decomposition.heads"):
        HeadExplorer(model, pixels, dec.project(model.encode_text(["a cat"])))
    with pytest.raises(ValueError, match="textspan_df"):
        HeadExplorer(model, pixels, dec, textspan_df=pd.DataFrame({"layer": [0], "head": [0]}))


def test_widgets_display_through_their_box(explorer_parts):
    """``display(explorer)`` publishes its box's widget view (through ``_ipython_display_``), with
    ipywidgets 8 and 7 (``make widgets7`` runs this file with Colab's 7.7.1); a front end that asks
    for ``_repr_mimebundle_`` gets the box's bundle (ipywidgets 8) or None (7, which has none)."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output

    model, pixels, dec = explorer_parts
    explorer = HeadExplorer(model, pixels, dec)
    InteractiveShell.instance()
    with capture_output() as captured:
        display(explorer)
    views = [out.data.get("application/vnd.jupyter.widget-view+json") for out in captured.outputs]
    assert len(views) == 1 and views[0]["model_id"] == explorer.widget.model_id
    box_bundle = getattr(explorer.widget, "_repr_mimebundle_", None)
    assert explorer._repr_mimebundle_() == (box_bundle() if box_bundle else None)
    assert explorer.layer in explorer.widget.children[0].children


# ---------------------------------------------------------------- AblationPanel
def test_ablation_panel_zero_changes_probabilities(tiny, pixels):
    panel = AblationPanel(tiny, pixels, class_names=CLASSES)
    torch.testing.assert_close(panel.last_probs, panel.baseline_probs)
    assert panel.interventions() == [] and "none" in panel.status.value
    panel.heads.value = ("L1.H0", "L2.H1", "L2.H3")
    assert not torch.allclose(panel.last_probs, panel.baseline_probs, atol=1e-4)
    expected = tiny.with_interventions(clipinterp.interventions.zero(["L1.H0", "L2.H1", "L2.H3"])).zero_shot(
        pixels, CLASSES)
    torch.testing.assert_close(panel.last_probs, expected)
    assert "zero(L1.H0, L2.H1, L2.H3)" in panel.status.value
    # the centered decomposition gives a zeroed head exactly nothing
    assert panel.last_decomposition.heads[0, 2, 1].abs().max() == 0
    assert panel.last_decomposition.heads[0, 2, 0].abs().max() > 0
    assert len(png_outputs(panel.probs_output)) == 1 and len(png_outputs(panel.decomposition_output)) == 1
    zeroed = panel.last_probs.clone()
    panel.kind.value = "prune"  # pruning also silences the head's output
    torch.testing.assert_close(panel.last_probs, zeroed)
    panel.kind.value = "scale"  # alpha starts at 0: zeroing again
    assert not panel.alpha.disabled and panel.cls_only.disabled
    torch.testing.assert_close(panel.last_probs, zeroed)
    panel.alpha.value = 1.0
    torch.testing.assert_close(panel.last_probs, panel.baseline_probs)


def test_ablation_panel_other_kinds(tiny, pixels):
    panel = AblationPanel(tiny, pixels, class_names=CLASSES)
    panel.heads.value = ("L0.H1", "L1.H2", "L2.H0")
    seen = []
    for kind in ("mean", "attn_uniform", "attn_identity"):
        panel.kind.value = kind
        assert panel.alpha.disabled and panel.cls_only.disabled == (kind == "mean")
        assert panel.last_model.describe().startswith(kind.replace("_", ""))
        assert not torch.allclose(panel.last_probs, panel.baseline_probs, atol=1e-4)
        seen.append(panel.last_probs)
    assert not torch.allclose(seen[1], seen[2], atol=1e-4)
    panel.alpha.value = 3.0  # alpha matters only to scale: nothing is recomputed
    assert panel.last_probs is seen[2]
    panel.cls_only.value = True
    assert not torch.allclose(panel.last_probs, seen[2], atol=1e-4)


def test_ablation_panel_view_follows_image_and_target(tiny, pixels):
    panel = AblationPanel(tiny, pixels, class_names=CLASSES)
    panel.image.value = 3
    panel.target.value = 1
    class_emb = tiny.class_embeddings(CLASSES)
    expected = clipinterp.decompose(tiny, pixels[3:4], convention="centered", normalize=True).project(class_emb)
    torch.testing.assert_close(panel.last_decomposition.heads, expected.heads)
    cosine = (tiny.encode_image(pixels[3:4]) @ class_emb.T)[0, 1]
    assert panel.last_decomposition.total()[0, 1].item() == pytest.approx(cosine.item(), abs=1e-5)


def test_ablation_panel_retrieval_table(tiny, pixels):
    captions = ["a cat", "a dog", "of a", "photo"]
    panel = AblationPanel(tiny, pixels, captions=captions, ks=(1, 2))
    assert panel.last_probs is None and list(panel.target.options)[1] == ("a dog", 1)
    assert list(panel.last_table.index) == ["original", "edited"]
    baseline = clipinterp.retrieval_recall(tiny, pixels, captions, ks=(1, 2))
    assert panel.last_table.loc["original", "i2t@1"] == baseline.loc[0, "i2t@1"]
    panel.heads.value = tuple(f"L{layer}.H{h}" for layer in range(3) for h in range(4))
    panel.kind.value = "mean"  # every head at its mean: the images become much alike
    edited = clipinterp.retrieval_recall(panel.last_model, pixels, captions, ks=(1, 2))
    assert panel.last_table.loc["edited", "t2i@2"] == edited.loc[0, "t2i@2"]
    assert "i2t@2" in panel.table.value and "edited" in panel.table.value


def test_ablation_panel_needs_a_task(tiny, pixels):
    with pytest.raises(ValueError, match="class_names"):
        AblationPanel(tiny, pixels)


# ---------------------------------------------------------------- ConceptHeadMap
@pytest.fixture()
def concept_scores():
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"layer": layer, "head": h, "concept": concept, "score": rng.random()}
                         for concept in ("colour", "shape") for layer in range(3) for h in range(4)])


def test_concept_map_switches_concept(concept_scores):
    view = ConceptHeadMap(concept_scores)
    shape = concept_scores[concept_scores["concept"] == "shape"]
    first = view.current_values.copy()
    view.concept.value = "shape"
    assert view.current_values.shape == (3, 4)
    assert view.current_values[2, 1] == shape[(shape["layer"] == 2) & (shape["head"] == 1)]["score"].item()
    assert not np.allclose(view.current_values, first)
    assert view.figure.axes[0].get_title() == "shape" and len(png_outputs(view.output)) == 1


def test_concept_map_selection_fires_the_callback(concept_scores):
    chosen = []
    view = ConceptHeadMap(concept_scores, on_select=chosen.append)
    assert view.selected_head is None and chosen == []
    view.head.value = (1, 3)
    assert view.selected_head == (1, 3) and chosen == [(1, 3)]
    frames = [p for p in view.figure.axes[0].patches if not p.get_fill()]
    assert [p.get_xy() for p in frames] == [(3, 1)]
    view.select("L0.H2")
    assert view.head.value == (0, 2) and chosen == [(1, 3), (0, 2)]
    with pytest.raises(ValueError, match="no scores"):
        view.select("L5.H0")


def test_concept_map_click_selects_the_cell(concept_scores, explorer_parts):
    model, pixels, dec = explorer_parts
    explorer = HeadExplorer(model, pixels, dec)
    view = ConceptHeadMap(concept_scores, on_select=explorer.select)
    ax = view.figure.axes[0]
    x, y = ax.transData.transform((2.5, 1.5))  # the centre of the cell of L1.H2
    view.figure.canvas.callbacks.process("button_press_event",
                                         MouseEvent("button_press_event", view.figure.canvas, x, y, button=1))
    assert view.selected_head == (1, 2)
    assert explorer.selected_head == (1, 2)


def test_concept_map_checks_its_frame(concept_scores):
    with pytest.raises(ValueError, match="concept"):
        ConceptHeadMap(concept_scores.drop(columns="concept"))
    with pytest.raises(ValueError, match="several scores"):
        ConceptHeadMap(pd.concat([concept_scores, concept_scores.iloc[:1]]))
    negative = concept_scores.copy()
    negative.loc[0, "layer"] = -1
    with pytest.raises(ValueError, match=">= 0"):
        ConceptHeadMap(negative)


def test_the_widgets_work_with_colabs_ipywidgets_7():
    """Colab ships ipywidgets 7.7.1 and breaks when 8 is forced: every other test of this file
    passes with 7.7.1 first on the path (``make widgets7`` puts it in tests/artifacts/ipywidgets7)."""
    if not (COLAB_WIDGETS / "ipywidgets" / "__init__.py").exists():
        pytest.skip("ipywidgets 7.7.1 is not in tests/artifacts/ipywidgets7: run `make widgets7`")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(COLAB_WIDGETS), os.environ.get("PYTHONPATH")])))
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             env=env, capture_output=True, text=True)
    assert version.stdout.strip() == "7.7.1", version.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
                          __file__, "-k", "not colabs_ipywidgets"], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and " passed" in run.stdout, run.stdout[-3000:]
