"""The planting stage: what it trains, what it leaves alone, and that its ablation is the ground truth's."""
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import CLIPModel

import clipinterp
from clipinterp.interventions import mean, with_interventions
from clipinterp.organism import train as trainer
from clipinterp.organism.card import _training
from clipinterp.organism.plant import HeadPlanting, Plant
from clipinterp.organism.tokenizer import WordTokenizer
from clipinterp.organism.world import generate

CONFIG = trainer.OrganismConfig(vision_layers=2, vision_width=16, vision_heads=2, vision_mlp=32,
                                text_layers=1, text_width=16, text_heads=2, text_mlp=32, projection_dim=8)
COMMON = dict(batch_size=8, config=CONFIG, progress=False, device="cpu")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    trainer.train(folder, steps=3, **COMMON)
    return folder


def test_plant_specs_parse_or_fail_clearly():
    assert Plant.parse(" color:L5.H0 ") == Plant("color", 5, 0) and str(Plant("count", 2, 3)) == "count:L2.H3"
    with pytest.raises(ValueError, match="expected ATTRIBUTE:L<layer>.H<head>"):
        Plant.parse("color:5.0")
    with pytest.raises(ValueError, match="unknown attribute 'colour'"):
        Plant.parse("colour:L1.H0")


def test_bad_plants_are_refused(base, tmp_path):
    model = CLIPModel.from_pretrained(base)
    tokenize = WordTokenizer(trainer.TEXT_PAD_LENGTH)
    with pytest.raises(ValueError, match="2 layers x 2 heads"):
        HeadPlanting(model, [Plant("color", 2, 0)], tokenize)
    with pytest.raises(ValueError, match="one head per attribute"):
        HeadPlanting(model, [Plant("color", 1, 0), Plant("color", 1, 1)], tokenize)
    with pytest.raises(ValueError, match="needs --init-from"):
        trainer.train(tmp_path / "x", steps=1, plants=["color:L1.H0"], **COMMON)


def test_ablated_copies_are_the_mean_ablation_of_the_ground_truth(base):
    """Copy k of the planting pass equals clipinterp's ``mean`` intervention on plant k's head with
    the batch as reference (float32, 1e-5)."""
    plants = [Plant("color", 1, 0), Plant("count", 0, 1)]
    model = CLIPModel.from_pretrained(base).eval()
    planting = HeadPlanting(model, plants, WordTokenizer(trainer.TEXT_PAD_LENGTH))
    hooked = clipinterp.load(str(base))
    images = list(generate("test", 6, seed=1).images)
    pixels = hooked.preprocess(images)
    with torch.no_grad():
        intact, *ablated = planting.image_embeddings(pixels)
    planting.remove()
    with torch.no_grad():  # no hook left behind: one copy of the batch, unablated
        plain = model.get_image_features(pixel_values=pixels)
    plain = getattr(plain, "pooler_output", plain)
    torch.testing.assert_close(torch.nn.functional.normalize(plain, dim=-1), intact, atol=1e-5, rtol=0)
    torch.testing.assert_close(intact, hooked.encode_image(pixels), atol=1e-5, rtol=0)
    for plant, got in zip(plants, ablated):
        edited = with_interventions(hooked, mean([(plant.layer, plant.head)], reference=pixels))
        torch.testing.assert_close(got, edited.encode_image(pixels), atol=1e-5, rtol=0)
        assert (got - intact).abs().max() > 1e-4  # the ablation changes something


def test_planting_stage_trains_only_the_text_tower_and_the_planted_slices(base, tmp_path):
    result = trainer.train(tmp_path, steps=3, lr=1e-2, init_from=base, plants=["color:L1.H0"], **COMMON)
    before, after = load_file(str(base / "model.safetensors")), load_file(str(tmp_path / "model.safetensors"))
    width = CONFIG.vision_width // CONFIG.vision_heads
    head, rest = slice(0, width), slice(width, None)
    attn = "vision_model.encoder.layers.1.self_attn."
    sliced = {attn + f"{p}_proj.{w}": (head, rest) for p in "qkv" for w in ("weight", "bias")}
    for name in before:
        if name in sliced:
            assert not torch.equal(before[name][head], after[name][head]), name
            assert torch.equal(before[name][rest], after[name][rest]), name
        elif name == attn + "out_proj.weight":
            assert not torch.equal(before[name][:, head], after[name][:, head])
            assert torch.equal(before[name][:, rest], after[name][:, rest])
        elif name.startswith("text_model.") and name.endswith("weight") or name.startswith("text_projection"):
            assert not torch.equal(before[name], after[name]), name
        elif not name.startswith("text_model."):
            assert torch.equal(before[name], after[name]), name
    assert result["args"]["plants"] == ["color:L1.H0"] and result["args"]["planting"]["weight"] > 0
    paragraph = _training(tmp_path, json.loads((tmp_path / "train_log.json").read_text()))
    assert "Stage 2, from stage 1's model" in paragraph and "planting stage (`--plant color:L1.H0`" in paragraph
