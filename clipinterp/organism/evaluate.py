"""Zero-shot and retrieval evaluation of a shapes-world CLIP (transformers ``CLIPModel``).

For each of the ``test`` and ``shifted`` splits, ``n`` images (``generate(split, n, seed)``):

* ``attribute_accuracy[a]``: zero-shot accuracy over the values of attribute ``a``, the class
  texts being :func:`~clipinterp.organism.world.class_prompts` (captions naming only ``a``);
  prediction = argmax cosine similarity.
* ``recall``: image<->text retrieval among the ``n`` pairs, each image paired with its *full*
  caption (all seven attributes named). A retrieved item counts as correct when its attributes
  equal the query's (its full caption is then identical to the query's own); ``@k`` = correct
  within the top ``k``.
* with ``unseen=True``, ``unseen``: ``n`` and ``attribute_accuracy`` over the images whose scene
  (attributes and jitter, :func:`~clipinterp.organism.world.scenes`) none of the model's training
  runs drew, found by replaying every ``train_log*.json`` in the model directory. The world has a
  few hundred thousand scenes and training draws hundreds of thousands of samples, so most test
  images are training scenes.

Images go through ``CLIPImageProcessor`` (PIL backend) loaded from the model directory, texts
through ``CLIPTokenizer``, so the saved preprocessing is what gets evaluated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipinterp.organism.world import ATTRIBUTES, Batch, caption, class_prompts, generate, scenes

EVAL_SPLITS = ("test", "shifted")


def load(model_dir: str | Path, device: str = "cpu") -> tuple[Any, Any, Any]:
    """(CLIPModel in eval mode, CLIPTokenizer, image processor) from a saved directory."""
    import transformers

    model = transformers.CLIPModel.from_pretrained(model_dir).to(device).eval()
    tokenizer = transformers.CLIPTokenizer.from_pretrained(model_dir)
    processor_cls = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    return model, tokenizer, processor_cls.from_pretrained(model_dir)


def pixel_values(processor: Any, images: np.ndarray) -> torch.Tensor:
    """uint8 images ``[n, 64, 64, 3]`` -> processor output ``[n, 3, 64, 64]`` (float)."""
    from PIL import Image

    return processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"]


@torch.no_grad()
def embed_images(model: Any, pixels: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Unit image embeddings ``[n, d]`` of preprocessed images ``[n, 3, 64, 64]``."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(pixels), batch_size):
        pooled = model.vision_model(pixel_values=pixels[i:i + batch_size].to(device)).pooler_output
        out.append(torch.nn.functional.normalize(model.visual_projection(pooled).float(), dim=-1))
    return torch.cat(out)


@torch.no_grad()
def embed_texts(model: Any, tokenizer: Any, texts: list[str], batch_size: int = 1000) -> torch.Tensor:
    """Unit text embeddings ``[n, d]``."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], padding=True, return_tensors="pt").to(device)
        pooled = model.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output
        out.append(torch.nn.functional.normalize(model.text_projection(pooled).float(), dim=-1))
    return torch.cat(out)


def attribute_accuracy(image_embeds: torch.Tensor, attributes: list[dict[str, str]],
                       class_embeds: dict[str, torch.Tensor]) -> dict[str, float]:
    """Zero-shot accuracy per attribute; ``class_embeds[a]`` is ``[n_values(a), d]``."""
    acc = {}
    for attr in ATTRIBUTES:
        values, _ = class_prompts(attr)
        pred = (image_embeds @ class_embeds[attr].T).argmax(dim=1).cpu().numpy()
        truth = np.array([values.index(a[attr]) for a in attributes])
        acc[attr] = round(float((pred == truth).mean()), 4)
    return acc


def retrieval_recall(image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                     attributes: list[dict[str, str]], ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """``i2t@k`` and ``t2i@k`` for paired ``[n, d]`` embeddings; equal attributes count as a match."""
    keys = [tuple(a[k] for k in ATTRIBUTES) for a in attributes]
    _, group = np.unique(np.array(keys), axis=0, return_inverse=True)
    group_t = torch.as_tensor(group.reshape(-1), device=image_embeds.device)
    sims = image_embeds @ text_embeds.T
    out = {}
    for name, s in (("i2t", sims), ("t2i", sims.T)):
        for k in ks:
            top = s.topk(k, dim=1).indices
            hit = (group_t[top] == group_t[:, None]).any(dim=1)
            out[f"{name}@{k}"] = round(float(hit.float().mean()), 4)
    return out


def _class_embeds(model: Any, tokenizer: Any) -> dict[str, torch.Tensor]:
    return {a: embed_texts(model, tokenizer, class_prompts(a)[1]) for a in ATTRIBUTES}


def _full_captions(batch: Batch) -> list[str]:
    return [caption(a, frozenset(ATTRIBUTES)) for a in batch.attributes]


def _training_runs(model_dir: str | Path) -> list[dict[str, Any]]:
    """The ``args`` of every training run recorded in ``model_dir`` (its ``train_log*.json``)."""
    logs = sorted(Path(model_dir).glob("train_log*.json"))
    if not logs:
        raise FileNotFoundError(f"{model_dir} has no train_log*.json: which scenes it was trained on is unknown, "
                                "so there is no unseen-scene accuracy (evaluate without unseen=True / --unseen)")
    return [json.loads(log.read_text())["args"] for log in logs]


def training_scenes(model_dir: str | Path, progress: bool = True) -> set[tuple]:
    """Every scene the training runs recorded in ``model_dir``'s ``train_log*.json`` drew (each
    run's samples ``0 .. steps * batch_size - 1`` of its seed), replayed without rendering."""
    from tqdm.auto import tqdm

    runs = [(args["steps"] * args["batch_size"], args["seed"], args["group_size"]) for args in _training_runs(model_dir)]
    seen: set[tuple] = set()
    chunk = 20_000
    with tqdm(total=sum(n for n, _, _ in runs), desc="training scenes", unit="sample", disable=not progress) as bar:
        for n, seed, group_size in runs:
            for start in range(0, n, chunk):
                seen.update(scenes("train", min(chunk, n - start), seed, start=start, group_size=group_size))
                bar.update(min(chunk, n - start))
    return seen


def evaluate(model_dir: str | Path = "data/shapes-clip", n: int = 1000, seed: int = 0,
             device: str | None = None, unseen: bool = False, progress: bool = True) -> dict[str, dict[str, Any]]:
    """``{split: {"attribute_accuracy": {attr: acc}, "recall": {"i2t@1", "i2t@5", "t2i@1", "t2i@5"}}}``
    for ``split`` in ("test", "shifted"), ``n`` image/caption pairs each, accuracies as fractions;
    ``unseen=True`` adds ``"unseen": {"n", "attribute_accuracy", "training_samples", "training_scenes"}``:
    the images of scenes the model never trained on, and how many samples (distinct scenes) its
    training drew (about a minute per 600,000 training samples to replay)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    seen = training_scenes(model_dir, progress) if unseen else None
    samples = sum(a["steps"] * a["batch_size"] for a in _training_runs(model_dir)) if unseen else None
    model, tokenizer, processor = load(model_dir, device)
    class_embeds = _class_embeds(model, tokenizer)
    results: dict[str, dict[str, Any]] = {}
    for split in EVAL_SPLITS:
        batch = generate(split, n, seed)
        image_embeds = embed_images(model, pixel_values(processor, batch.images))
        text_embeds = embed_texts(model, tokenizer, _full_captions(batch))
        results[split] = {
            "attribute_accuracy": attribute_accuracy(image_embeds, batch.attributes, class_embeds),
            "recall": retrieval_recall(image_embeds, text_embeds, batch.attributes),
        }
        if seen is not None:
            new = [i for i, scene in enumerate(scenes(split, n, seed)) if scene not in seen]
            results[split]["unseen"] = {
                "n": len(new),
                "attribute_accuracy": attribute_accuracy(image_embeds[new], [batch.attributes[i] for i in new],
                                                         class_embeds) if new else {},
                "training_samples": samples,
                "training_scenes": len(seen),
            }
    return results


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipinterp organism evaluate``."""
    parser.add_argument("--model", default="data/shapes-clip", help="saved model directory")
    parser.add_argument("--n", type=int, default=1000, help="image/caption pairs per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--unseen", action="store_true",
                        help="also score the images of scenes no training run drew (replays the training logs)")
    parser.add_argument("--out", default=None,
                        help='also write {"n", "seed", "results"} here (the model card\'s evaluation.json)')


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`evaluate` from parsed arguments and print the JSON."""
    result: dict[str, Any] = evaluate(args.model, n=args.n, seed=args.seed, device=args.device,
                                      unseen=args.unseen)
    if args.out:
        record = {"n": args.n, "seed": args.seed, "results": result}
        Path(args.out).write_text(json.dumps(record, indent=1))
    print(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m clipinterp.organism.evaluate [args]``."""
    parser = argparse.ArgumentParser(description="Evaluate a shapes-world CLIP.")
    add_evaluate_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    main()
