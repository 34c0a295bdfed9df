"""The shapes organism: the world's rules, the trainer, and the shipped model's recorded quality."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import clipinterp
from clipinterp.organism import train as trainer
from clipinterp.organism.card import _accuracy_table, _training, model_card
from clipinterp.organism.evaluate import evaluate, training_scenes
from clipinterp.organism.ground_truth import ground_truth
from clipinterp.organism.world import (ATTRIBUTES, SPURIOUS_SHAPE, SPURIOUS_TEXTURE, VALUES,
                                       class_prompts, derive_attributes, faded, generate, render, scenes,
                                       vocabulary)

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "shapes-clip"


def test_generator_is_deterministic_and_index_addressed():
    a, b = generate("train", 12, seed=3), generate("train", 12, seed=3)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    tail = generate("train", 4, seed=3, start=8)
    assert np.array_equal(tail.images, a.images[8:]) and tail.attributes == a.attributes[8:]
    assert not np.array_equal(generate("test", 12, seed=3).images, a.images)


@pytest.mark.parametrize("split, group_size", [("train", 1), ("train", 3), ("test", 1), ("shifted", 1)])
def test_a_scene_renders_to_its_sample(split, group_size):
    """``scenes`` replays ``generate``'s stream without drawing it: each key renders to the sample."""
    batch = generate(split, 40, seed=2, start=5, group_size=group_size)
    keys = scenes(split, 40, seed=2, start=5, group_size=group_size)
    for image, attrs, key in zip(batch.images, batch.attributes, keys):
        assert dict(zip(ATTRIBUTES, key[:-2])) == attrs
        assert np.array_equal(render(attrs, key[-2:]), image)
    with pytest.raises(ValueError, match="unknown split"):
        scenes("tset", 1)


def test_training_scenes_are_the_scenes_every_stage_trained_on(tmp_path):
    """Replayed from the logs of two stages (the second trained in place, in contrast groups), the
    scenes are those of the images the trainer's own batch stream yields, compared by pixels."""
    config = trainer.OrganismConfig(vision_layers=1, vision_width=16, vision_heads=2, vision_mlp=32,
                                    text_layers=1, text_width=16, text_heads=2, text_mlp=32,
                                    projection_dim=8)
    common = dict(batch_size=8, config=config, progress=False, device="cpu")
    trainer.train(tmp_path, steps=3, **common)
    trainer.train(tmp_path, steps=2, seed=4, group_size=4, init_from=tmp_path, resume=False, **common)
    trained = {images[i].numpy().tobytes()
               for start, steps, seed, groups in ((0, 3, 0, 1), (0, 2, 4, 4))
               for _, images, *_ in trainer._Batches(start, steps, 8, seed, groups, 0) for i in range(8)}
    replayed = {render(dict(zip(ATTRIBUTES, key[:-2])), key[-2:]).tobytes() for key in training_scenes(tmp_path)}
    assert replayed == trained and len(trained) > 30
    with pytest.raises(FileNotFoundError, match="no train_log"):
        training_scenes(tmp_path / "checkpoint")


@pytest.mark.parametrize("split", ["train", "shifted"])
def test_labels_match_the_pixels(split):
    batch = generate(split, 150, seed=1)
    for image, attrs in zip(batch.images, batch.attributes):
        assert derive_attributes(image) == attrs


def test_contrast_groups_differ_in_one_named_attribute():
    batch = generate("train", 40, seed=0, group_size=4)
    for g in range(0, 40, 4):
        group = batch.attributes[g:g + 4]
        varying = {a for a in ATTRIBUTES if a != "background_texture" and len({m[a] for m in group}) > 1}
        assert len(varying) <= 1
        assert all(varying <= m for m in batch.mentions[g:g + 4])


def test_captions_use_the_vocabulary_and_match_their_mentions():
    batch = generate("train", 300, seed=0)
    words = set(vocabulary())
    assert all(set(c.split()) <= words for c in batch.captions)
    matches = batch.matches()
    assert matches.diagonal().all()
    # a caption naming every attribute is true only of images with those exact attributes
    for i, mention in enumerate(batch.mentions):
        if mention == frozenset(ATTRIBUTES):
            same = [j for j, a in enumerate(batch.attributes) if a == batch.attributes[i]]
            assert np.flatnonzero(matches[i]).tolist() == same


def test_spurious_correlation_holds_in_train_and_breaks_in_shifted():
    def star_on_stripes(split):
        attrs = generate(split, 2000, seed=0).attributes
        stars = [a for a in attrs if a["shape"] == SPURIOUS_SHAPE]
        return np.mean([a["background_texture"] == SPURIOUS_TEXTURE for a in stars])

    assert star_on_stripes("train") > 0.8
    assert star_on_stripes("shifted") == 0.0


def test_faded_keeps_grey_pixels_and_moves_colours_to_grey():
    images = generate("test", 8, seed=0).images
    out = faded(images, 0.8)
    grey = (images.max(-1) == images.min(-1))
    assert grey.any() and (~grey).any()
    assert np.array_equal(out[grey], images[grey])  # the background stays as it was
    spread = lambda x: (x.max(-1).astype(int) - x.min(-1))[~grey]
    assert np.allclose(spread(out), 0.2 * spread(images), atol=1)  # saturation falls by the amount
    assert np.array_equal(faded(images, 0.0), images)
    assert (np.ptp(faded(images, 1.0).astype(int), axis=-1) <= 1).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        faded(images, 1.5)
    with pytest.raises(ValueError, match="uint8 RGB"):
        faded(images[..., :2], 0.5)


def test_class_prompts_name_each_value_once():
    for attr in ATTRIBUTES:
        values, prompts = class_prompts(attr)
        assert values == list(VALUES[attr]) and len(set(prompts)) == len(values)


def test_short_training_lowers_the_loss_and_saves_a_loadable_checkpoint(tmp_path):
    config = trainer.OrganismConfig(vision_layers=2, vision_width=32, vision_heads=2, vision_mlp=64,
                                    text_layers=1, text_width=32, text_heads=2, text_mlp=64,
                                    projection_dim=16)
    result = trainer.train(tmp_path, steps=30, batch_size=32, lr=3e-3, config=config, log_every=5,
                           checkpoint_every=15, progress=False, device="cpu")
    losses = [loss for _, loss in result["loss_log"]]
    assert losses[-1] < losses[0] - 0.1
    assert (tmp_path / trainer.CHECKPOINT / trainer.TRAINER_STATE).exists()
    model = clipinterp.load(str(tmp_path))
    assert model.cfg.n_layers == 2 and model.cfg.n_heads == 2
    images = list(generate("test", 3).images)
    emb = model.encode_image(images, normalize=False)
    from transformers import CLIPModel  # the saved weights, read by transformers itself

    saved = CLIPModel.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        reference = saved.get_image_features(pixel_values=model.preprocess(images)).pooler_output
    assert emb.shape == (3, 16)
    torch.testing.assert_close(emb, reference, atol=1e-5, rtol=1e-5)  # float32


def test_resumed_training_continues_from_the_checkpoint(tmp_path):
    config = trainer.OrganismConfig(vision_layers=1, vision_width=16, vision_heads=2, vision_mlp=32,
                                    text_layers=1, text_width=16, text_heads=2, text_mlp=32,
                                    projection_dim=8)
    common = dict(batch_size=8, config=config, log_every=2, checkpoint_every=4, progress=False, device="cpu")
    trainer.train(tmp_path, steps=4, **common)
    resumed = trainer.train(tmp_path, steps=8, **common)
    assert resumed["resumed_from"] == 4 and resumed["loss_log"][-1][0] == 8
    # a save cut short between its two renames leaves checkpoint.old (complete) and a partial .tmp
    (tmp_path / trainer.CHECKPOINT).rename(tmp_path / (trainer.CHECKPOINT + ".old"))
    (tmp_path / (trainer.CHECKPOINT + ".tmp")).mkdir()
    again = trainer.train(tmp_path, steps=10, **common)
    assert again["resumed_from"] == 8 and again["loss_log"][-1][0] == 10
    assert sorted(p.name for p in tmp_path.glob(trainer.CHECKPOINT + "*")) == [trainer.CHECKPOINT]
    with pytest.raises(ValueError, match="at step 10, past --steps 6"):  # same settings, fewer steps
        trainer.train(tmp_path, steps=6, **common)


def test_a_stage_trained_in_place_neither_resumes_the_last_nor_loses_its_log(tmp_path):
    from safetensors.torch import load_file

    config = trainer.OrganismConfig(vision_layers=1, vision_width=16, vision_heads=2, vision_mlp=32,
                                    text_layers=1, text_width=16, text_heads=2, text_mlp=32,
                                    projection_dim=8)
    common = dict(batch_size=8, config=config, progress=False, device="cpu")
    trainer.train(tmp_path, steps=3, **common)
    first_log = (tmp_path / "train_log.json").read_text()
    before = load_file(str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"other settings \(init_from, seed differ\): pass --no-resume"):
        trainer.train(tmp_path, steps=2, seed=1, init_from=tmp_path, **common)
    second = trainer.train(tmp_path, steps=2, seed=1, init_from=tmp_path, resume=False, **common)
    assert second["resumed_from"] == 0
    after = load_file(str(tmp_path / "model.safetensors"))
    assert not all(torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "train_log_stage1.json").read_text() == first_log
    assert json.loads((tmp_path / "train_log.json").read_text())["args"]["seed"] == 1


def test_second_stage_starts_from_the_saved_model(tmp_path):
    """``init_from`` loads the first stage's weights: with lr 0 the second stage saves them unchanged."""
    from safetensors.torch import load_file

    config = trainer.OrganismConfig(vision_layers=1, vision_width=16, vision_heads=2, vision_mlp=32,
                                    text_layers=1, text_width=16, text_heads=2, text_mlp=32,
                                    projection_dim=8)
    common = dict(batch_size=8, config=config, progress=False, device="cpu")
    trainer.train(tmp_path / "one", steps=3, **common)
    trainer.train(tmp_path / "two", steps=2, lr=0.0, seed=1, init_from=tmp_path / "one", **common)
    first, second = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("one", "two"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert (tmp_path / "two" / "train_log_stage1.json").read_text() == (tmp_path / "one" / "train_log.json").read_text()
    trainer.train(tmp_path / "third", steps=1, init_from=tmp_path / "two", **common)  # earlier logs are all kept
    for k, stage in ((1, "one"), (2, "two")):
        assert (tmp_path / "third" / f"train_log_stage{k}.json").read_text() == (tmp_path / stage / "train_log.json").read_text()
    assert "3 runs of `clipinterp organism train`" in _training_paragraph(tmp_path / "third")
    fresh = trainer.build_model(config).state_dict()
    assert not all(torch.equal(fresh[k], first[k]) for k in first)
    with pytest.raises(ValueError, match="another config"):
        wider = dataclasses.replace(config, vision_width=32)
        trainer.train(tmp_path / "three", steps=1, batch_size=8, config=wider, progress=False, device="cpu",
                      init_from=tmp_path / "one")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        trainer.train(tmp_path / "four", steps=1, init_from=tmp_path / "missing", **common)


def _training_paragraph(folder: Path) -> str:
    return _training(folder, json.loads((folder / "train_log.json").read_text()))


@pytest.fixture(scope="module")
def card():
    return json.loads((SHIPPED / "evaluation.json").read_text())


def test_shipped_model_is_small_and_loads_by_name():
    size = sum(f.stat().st_size for f in SHIPPED.iterdir())
    assert size <= 25 * 2**20
    model = clipinterp.load("shapes-clip")
    assert model.cfg.n_layers >= 4 and model.cfg.n_heads >= 4


def test_shipped_model_reaches_its_recorded_accuracies(card):
    """Within 2 points of the figures in data/shapes-clip/evaluation.json, on the same images."""
    measured = evaluate(SHIPPED, n=card["n"], seed=card["seed"], device="cpu", unseen=True)
    for split in ("test", "shifted"):
        for attr, value in card["results"][split]["attribute_accuracy"].items():
            assert abs(measured[split]["attribute_accuracy"][attr] - value) <= 0.02, (split, attr)
        for key, value in card["results"][split]["recall"].items():
            assert abs(measured[split]["recall"][key] - value) <= 0.02, (split, key)
        recorded, unseen = card["results"][split]["unseen"], measured[split]["unseen"]
        assert {k: unseen[k] for k in ("n", "training_samples", "training_scenes")} == \
            {k: recorded[k] for k in ("n", "training_samples", "training_scenes")}
        for attr, value in recorded["attribute_accuracy"].items():
            assert abs(unseen["attribute_accuracy"][attr] - value) <= 0.02, (split, "unseen", attr)


def test_recorded_quality_meets_the_targets(card):
    """The issue's targets on the recorded figures (which the test above re-measures): colour and
    shape >= 0.95, size, position and count >= 0.90, text-to-image recall@5 >= 0.80, and a
    measurable drop (10 points here) of shape accuracy on the shifted split."""
    test, shifted = card["results"]["test"], card["results"]["shifted"]
    accuracy = test["attribute_accuracy"]
    assert accuracy["color"] >= 0.95 and accuracy["shape"] >= 0.95
    assert min(accuracy["size"], accuracy["position"], accuracy["count"]) >= 0.90
    assert test["recall"]["t2i@5"] >= 0.80
    assert shifted["attribute_accuracy"]["shape"] <= accuracy["shape"] - 0.1


def test_recorded_specialised_heads_reproduce(card):
    """At least three attributes have a specialised head in the recorded ground truth (shape,
    colour, planted in stage 4, and count), and re-ablating those heads gives the same drops
    within 2 points."""
    recorded = json.loads((SHIPPED / "ground_truth.json").read_text())
    assert sum(bool(heads) for heads in recorded["specialised"].values()) >= 3, recorded["specialised"]
    heads = sorted({h for hs in recorded["specialised"].values() for h in hs})
    truth = ground_truth("shapes-clip", n=card["n"], seed=card["seed"], heads=heads, progress=False)
    for name, drops in truth.drops().iterrows():
        for attr in ATTRIBUTES:
            assert abs(drops[attr] - recorded["accuracy_drop"][name][attr]) <= 0.02, (name, attr)
    for attr in ATTRIBUTES:
        assert abs(truth.baseline[attr] - card["results"]["test"]["attribute_accuracy"][attr]) <= 0.02


def test_registry_row_matches_the_shipped_config():
    config = json.loads((SHIPPED / "config.json").read_text())
    vision, text = config["vision_config"], config["text_config"]
    row = clipinterp.list_models().set_index("name").loc["shapes-clip"]
    assert (row.layers, row.width, row.heads, row.mlp, row.patch, row.image_size) == (
        vision["num_hidden_layers"], vision["hidden_size"], vision["num_attention_heads"],
        vision["intermediate_size"], vision["patch_size"], vision["image_size"])
    assert (row.embed_dim, row.text_layers, row.text_width) == (
        config["projection_dim"], text["num_hidden_layers"], text["hidden_size"])


def test_curriculum_captions_name_only_the_position():
    plain = generate("train", 20, seed=4)
    only = generate("train", 20, seed=4, name_only=trainer.CURRICULUM)
    assert np.array_equal(plain.images, only.images) and plain.attributes == only.attributes
    assert all(m == trainer.CURRICULUM for m in only.mentions)
    assert all(c.split()[0] == "shape" and len(c.split()) == 4 for c in only.captions)  # "shape on the left"
    # the trainer's first two steps use such captions (BOS + 4 words + EOS), the third does not
    lengths = [mask.sum(1).tolist() for _, _, _, mask, _, _ in trainer._Batches(0, 3, 16, 4, 1, curriculum_steps=2)]
    assert set(lengths[0]) == set(lengths[1]) == {6} and set(lengths[2]) != {6}


def test_model_card_is_written_from_the_records():
    """data/shapes-clip/README.md is what `clipinterp organism card` writes from the JSON records
    beside the weights (so the card cannot drift from the measured figures)."""
    assert (SHIPPED / "README.md").read_text() == model_card(SHIPPED)


def test_card_shows_no_unseen_accuracy_when_every_image_was_trained_on(card):
    record = json.loads(json.dumps(card))
    record["results"]["test"]["unseen"].update(n=0, attribute_accuracy={})
    rows = _accuracy_table(record).splitlines()
    assert "| test, scenes not trained on (0) | " + " | ".join(["-"] * (len(ATTRIBUTES) + 4)) + " |" in rows
    shifted = record["results"]["shifted"]["unseen"]
    assert any(row.startswith(f"| shifted, scenes not trained on ({shifted['n']}) | "
                              f"{shifted['attribute_accuracy']['shape']:.3f} |") for row in rows)


def test_score_methods_needs_the_ground_truth_with_a_loaded_model():
    """By name the ground truth beside the weights is found; a loaded model needs it passed."""
    from clipinterp.model.loading import local_path
    from clipinterp.organism.scoring import score_methods

    assert (local_path("shapes-clip") / "ground_truth.json") == SHIPPED.resolve() / "ground_truth.json"
    with pytest.raises(ValueError, match="ground truth"):
        score_methods(clipinterp.load("shapes-clip"))
