import pytest
import torch

from clipinterp import interventions as iv
from clipinterp.decompose import decompose
from clipinterp.evaluation import recall_from_embeddings, retrieval_recall, zero_shot_accuracy


def test_recall_from_embeddings_by_hand():
    image = torch.eye(3)
    # caption m belongs to image m; captions 1 and 2 are each closer to the other's image
    text = torch.tensor([[1.0, 0, 0], [0.1, 0.2, 1], [0.3, 1, 0.5]])
    r = recall_from_embeddings(image, text, torch.tensor([0, 1, 2]), ks=(1, 2))
    assert r["i2t@1"] == pytest.approx(1 / 3) and r["t2i@1"] == pytest.approx(1 / 3)
    assert r["i2t@2"] == pytest.approx(1.0) and r["t2i@2"] == pytest.approx(1.0)


def test_zero_shot_on_model_interventions_and_decomposition(tiny, pixels):
    names = ["cat", "dog"]
    labels = tiny.zero_shot(pixels, names).argmax(-1)
    df = zero_shot_accuracy(tiny, pixels, labels, names, templates=["a photo of a {}."])
    assert df.accuracy.item() == 1.0  # the model's own predictions as labels
    d = decompose(tiny, pixels)
    assert zero_shot_accuracy(tiny, d, labels, names).accuracy.item() == 1.0  # total() is the embedding
    edited = zero_shot_accuracy(tiny.with_interventions(iv.scale(-5.0, [(2, h) for h in range(4)])), pixels, labels, names)
    assert edited.interventions.item().startswith("scale(")
    with pytest.raises(ValueError, match="labels"):
        zero_shot_accuracy(tiny, pixels, [0, 1, 2, 5], names)


def test_retrieval_recall_table(tiny, pixels):
    captions = ["a cat", "a dog", "a photo", "of a cat"]
    df = retrieval_recall(tiny, pixels, captions, ks=(1, 4))
    assert df["i2t@4"].item() == 1.0 and df["t2i@4"].item() == 1.0
    with pytest.raises(ValueError, match="captions"):
        retrieval_recall(tiny, pixels, captions[:3])
