"""Contrastive training of the shapes-world CLIP (a transformers ``CLIPModel``).

Data are generated on the fly: the batch of step ``t`` is training-split samples
``t * batch_size ... (t + 1) * batch_size - 1`` of :func:`clipinterp.organism.world.generate`,
so a run is a pure function of its arguments and a resumed run sees the same batches.
Loss: symmetric InfoNCE over the batch with CLIP's learnable logit scale (clamped to 100).
Optimiser: AdamW (no weight decay on biases, norms, embeddings, logit scale), linear warmup then
cosine decay to zero. Checkpoints (``out_dir/checkpoint``) are complete transformers model
directories plus ``trainer_state.pt`` (optimizer, scheduler, step, RNG, loss log, arguments),
written atomically every ``checkpoint_every`` steps; ``resume=True`` continues from them when
they hold the same run (other arguments raise; the step count may grow). A stage trained in
place (``--init-from`` its own ``--out``) keeps the previous stage's log as
``train_log_stage<k>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from clipinterp.organism.plant import HeadPlanting, Plant, value_indices
from clipinterp.organism.tokenizer import EOS, BOS, WordTokenizer, build_vocab, save_tokenizer
from clipinterp.organism.world import IMAGE_SIZE, PATCH_SIZE, generate

CHECKPOINT = "checkpoint"
TRAINER_STATE = "trainer_state.pt"
# What the captions of the first ``curriculum_steps`` steps name: position alone. Without it
# neither tower picks position up (both map the four position phrases to one point); a block of
# position-only batches breaks that symmetry (interleaving them with plain batches does not).
CURRICULUM = frozenset({"position"})
TEXT_PAD_LENGTH = 16  # longest caption is 14 tokens with BOS/EOS; padding never reaches EOS


@dataclass
class OrganismConfig:
    """Architecture of the shapes CLIP (both towers pre-LN, QuickGELU)."""

    vision_layers: int = 6
    vision_width: int = 128
    vision_heads: int = 4
    vision_mlp: int = 512
    text_layers: int = 4
    text_width: int = 128
    text_heads: int = 4
    text_mlp: int = 512
    max_text_positions: int = 24
    projection_dim: int = 128


def build_model(config: OrganismConfig) -> Any:
    """A freshly initialised ``transformers.CLIPModel`` for ``config``."""
    from transformers import CLIPConfig, CLIPModel

    vocab, _ = build_vocab()
    text = {
        "vocab_size": len(vocab),
        "hidden_size": config.text_width,
        "intermediate_size": config.text_mlp,
        "num_hidden_layers": config.text_layers,
        "num_attention_heads": config.text_heads,
        "max_position_embeddings": config.max_text_positions,
        "hidden_act": "quick_gelu",
        "projection_dim": config.projection_dim,
        "bos_token_id": vocab[BOS],
        "eos_token_id": vocab[EOS],
        "pad_token_id": vocab[EOS],
    }
    vision = {
        "hidden_size": config.vision_width,
        "intermediate_size": config.vision_mlp,
        "num_hidden_layers": config.vision_layers,
        "num_attention_heads": config.vision_heads,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
        "hidden_act": "quick_gelu",
        "projection_dim": config.projection_dim,
    }
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=config.projection_dim)
    torch.manual_seed(0)
    model = CLIPModel(cfg)
    with torch.no_grad():
        model.vision_model.embeddings.position_embedding.weight.copy_(
            sincos_position_init(IMAGE_SIZE // PATCH_SIZE, config.vision_width)
        )
    return model


def sincos_position_init(grid: int, width: int, scale: float = 0.1) -> torch.Tensor:
    """2-D sine/cosine table ``[1 + grid**2, width]`` (row 0, the CLS token, is zero).

    Used only to initialise the (still learned) vision position embeddings: with the default
    small random init the model was slow to discover where objects are.
    """
    quarter = width // 4
    freqs = 1.0 / (100.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        angles = coord[:, None] * freqs[None, :]
        parts += [torch.sin(angles), torch.cos(angles)]
    table = torch.cat(parts, dim=1)
    table = torch.cat([table, torch.zeros(table.shape[0], width - table.shape[1], dtype=torch.float64)], dim=1)
    table = torch.cat([torch.zeros(1, width, dtype=torch.float64), table], dim=0)
    return (scale * table).float()


def image_statistics(n: int = 2048, seed: int = 12345) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of training-split pixels (scaled to [0, 1])."""
    x = generate("train", n, seed=seed).images.reshape(-1, 3).astype(np.float64) / 255.0
    return [round(float(v), 4) for v in x.mean(0)], [round(float(v), 4) for v in x.std(0)]


def save_preprocessor(out_dir: str | Path, mean: list[float], std: list[float]) -> None:
    """Write ``preprocessor_config.json`` for ``CLIPImageProcessor`` (64 px, no-op resize/crop)."""
    config = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": IMAGE_SIZE},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": mean,
        "image_std": std,
        "do_convert_rgb": True,
    }
    Path(out_dir, "preprocessor_config.json").write_text(json.dumps(config, indent=2))


def to_pixel_values(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[n, H, W, 3]`` -> normalised float ``[n, 3, H, W]`` (as CLIPImageProcessor does)."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


class _Batches(torch.utils.data.IterableDataset):
    """Yields ``(step, images uint8 [b, H, W, 3], ids [b, L], mask [b, L], matches [b, b], values
    [b, 7])`` for steps ``start..stop-1``; ``matches[i, j]``: caption ``i`` is true of image ``j``;
    ``values``: each image's value index of every attribute (:func:`~.plant.value_indices`)."""

    def __init__(self, start: int, stop: int, batch_size: int, seed: int, group_size: int,
                 curriculum_steps: int) -> None:
        self.start, self.stop, self.batch_size, self.seed = start, stop, batch_size, seed
        self.group_size, self.curriculum_steps = group_size, curriculum_steps
        self.tokenizer = WordTokenizer(TEXT_PAD_LENGTH)

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        for step in range(self.start + wid, self.stop, nw):
            only = CURRICULUM if step < self.curriculum_steps else None
            batch = generate("train", self.batch_size, self.seed, start=step * self.batch_size,
                             group_size=self.group_size, name_only=only)
            ids, mask = self.tokenizer(batch.captions)
            yield (step, torch.from_numpy(batch.images), torch.from_numpy(ids), torch.from_numpy(mask),
                   torch.from_numpy(batch.matches()), value_indices(batch.attributes))


def contrastive_loss(logits_per_image: torch.Tensor, matches: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with every true caption/image pair as a positive.

    logits_per_image: ``[b, b]``; matches: bool ``[b, b]``, ``[i, j]`` when caption ``i`` is true
    of image ``j`` (the diagonal always is). Each row's target spreads evenly over its positives,
    so a caption that names only "circle" is not pushed away from the other circles in the batch.
    """
    m = matches.float()
    i2t = -(F.log_softmax(logits_per_image, dim=1) * (m.t() / m.t().sum(1, keepdim=True))).sum(1)
    t2i = -(F.log_softmax(logits_per_image.t(), dim=1) * (m / m.sum(1, keepdim=True))).sum(1)
    return 0.5 * (i2t.mean() + t2i.mean())


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "embedding" in name or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def export(model: Any, out_dir: str | Path, mean: list[float], std: list[float], max_length: int) -> None:
    """Save model (safetensors), tokenizer and preprocessor in transformers' format to ``out_dir``."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    save_tokenizer(out_dir, max_length)
    save_preprocessor(out_dir, mean, std)


def _save_checkpoint(out: Path, model: Any, state: dict[str, Any], mean: list[float],
                     std: list[float], max_length: int) -> None:
    """Write the checkpoint beside the previous one, then swap: at every moment a complete one is
    on disk (``checkpoint`` or, during the swap, ``checkpoint.old``)."""
    tmp, final, old = (out / (CHECKPOINT + suffix) for suffix in (".tmp", "", ".old"))
    if tmp.exists():
        shutil.rmtree(tmp)
    export(model, tmp, mean, std, max_length)
    torch.save(state, tmp / TRAINER_STATE)
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def _latest_checkpoint(out: Path) -> Optional[Path]:
    """The complete checkpoint in ``out``: ``checkpoint``, or ``checkpoint.old`` if a swap was cut short."""
    for folder in (out / CHECKPOINT, out / (CHECKPOINT + ".old")):
        if (folder / TRAINER_STATE).exists():
            return folder
    return None


def _check_same_run(saved: dict[str, Any], meta: dict[str, Any], folder: Path) -> None:
    """A checkpoint resumes only the run that wrote it (the step count may grow)."""
    differ = sorted(k for k in meta if k != "steps" and saved.get(k) != meta[k])
    if differ:
        raise ValueError(f"{folder} holds a run with other settings ({', '.join(differ)} differ): pass --no-resume "
                         "(resume=False) to start afresh, or another --out")


def _archive_log(out: Path) -> None:
    """Before a stage trained in place (``--init-from`` its own ``--out``) writes its log, keep the
    previous stage's as the next ``train_log_stage<k>.json``."""
    log = out / "train_log.json"
    if log.exists():
        k = len(list(out.glob("train_log_stage*.json"))) + 1
        log.rename(out / f"train_log_stage{k}.json")


def train(
    out_dir: str | Path,
    *,
    steps: int = 3000,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    warmup: int | None = None,
    seed: int = 0,
    device: str | None = None,
    config: OrganismConfig | None = None,
    resume: bool = True,
    log_every: int = 50,
    checkpoint_every: int = 500,
    num_workers: int = 0,
    progress: bool = True,
    group_size: int = 1,
    soft_targets: bool = True,
    curriculum_steps: int = 0,
    init_from: str | Path | None = None,
    plants: Sequence[str | Plant] = (),
) -> dict[str, Any]:
    """Train the shapes CLIP and export it (transformers format) to ``out_dir``.

    Returns ``{"steps", "final_loss", "loss_log": [[step, loss], ...], "seconds",
    "steps_per_second", "device", "resumed_from"}``; also written to ``out_dir/train_log.json``.
    ``warmup`` defaults to 5% of ``steps``. Batches are made of contrast groups of ``group_size``
    scenes that differ in one named attribute (hard negatives; 1 = independent samples). The
    captions of the first ``curriculum_steps`` steps name only :data:`CURRICULUM`. ``init_from``: a
    saved model folder of the same config to start from (a further training stage; its logs are
    kept as ``out_dir/train_log_stage<k>.json``, k = 1, 2, ... in training order). ``plants``
    (``"color:L5.H0"`` or :class:`~.plant.Plant`) make this a planting stage (needs ``init_from``):
    see :mod:`clipinterp.organism.plant`.
    """
    from tqdm.auto import tqdm

    config = config or OrganismConfig()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    warmup = warmup if warmup is not None else max(1, steps // 20)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    plants = [p if isinstance(p, Plant) else Plant.parse(p) for p in plants]
    if plants and init_from is None:
        raise ValueError("--plant needs --init-from: a planting stage starts from a trained model")
    model = build_model(config).to(device)
    if init_from is not None:  # a second stage: start from a saved model of the same config
        weights = Path(init_from) / "model.safetensors"
        if not weights.exists():
            raise FileNotFoundError(f"--init-from {init_from}: no model.safetensors there")
        try:
            model.load_state_dict(load_file(str(weights), device=str(device)))
        except RuntimeError as err:
            raise ValueError(f"--init-from {init_from} was trained with another config than {asdict(config)}: "
                             "pass the same architecture flags") from err
    mean, std = image_statistics()
    mean_t, std_t = torch.tensor(mean, device=device), torch.tensor(std, device=device)
    planting = HeadPlanting(model, plants, WordTokenizer(TEXT_PAD_LENGTH)) if plants else None
    opt = planting.optimizer(lr) if planting else _optimizer(model, lr, weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, warmup))
    start, loss_log = 0, []
    max_length = config.max_text_positions
    meta = {"steps": steps, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
            "warmup": warmup, "seed": seed, "group_size": group_size, "soft_targets": soft_targets, "curriculum_steps": curriculum_steps,
            "init_from": str(init_from) if init_from else None, "plants": [str(p) for p in plants],
            "planting": planting.settings() if planting else None,
            "config": asdict(config)}
    ckpt = _latest_checkpoint(out) if resume else None
    if ckpt is not None:
        state = torch.load(ckpt / TRAINER_STATE, map_location="cpu", weights_only=False)
        _check_same_run(state["args"], meta, ckpt)
        if state["step"] > steps:  # the log would record fewer steps than the exported model trained
            raise ValueError(f"{ckpt} is at step {state['step']}, past --steps {steps}: resume with --steps "
                             f">= {state['step']}, or pass --no-resume (resume=False) to start afresh")
        model.load_state_dict(load_file(str(ckpt / "model.safetensors"), device=str(device)))
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if device.startswith("cuda") and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"])
        start, loss_log = state["step"], state["loss_log"]
    resumed_from = start

    def state_dict(step: int) -> dict[str, Any]:
        return {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state() if device.startswith("cuda") else None,
                "loss_log": loss_log, "args": meta}

    loader = torch.utils.data.DataLoader(
        _Batches(start, steps, batch_size, seed, group_size, curriculum_steps), batch_size=None, num_workers=num_workers,
        pin_memory=device.startswith("cuda"), persistent_workers=False,
    )
    use_amp = device.startswith("cuda")
    model.train()
    t0 = time.time()
    running, n_running = 0.0, 0
    bar = tqdm(total=steps, initial=start, disable=not progress, desc="organism train")
    labels = torch.arange(batch_size, device=device)
    objective = contrastive_loss if soft_targets else (
        lambda logits, _: 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)))
    for step, images, ids, mask, matches, values in loader:
        pixel_values = to_pixel_values(images.to(device, non_blocking=True), mean_t, std_t)
        ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            if planting:
                loss = planting.loss(pixel_values, ids, mask, matches.to(device), values.to(device), objective)
            else:
                logits = model(input_ids=ids, attention_mask=mask, pixel_values=pixel_values).logits_per_image
                loss = objective(logits.float(), matches.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if not planting:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, math.log(100.0))
        running += float(loss.detach())
        n_running += 1
        done = step + 1
        if done % log_every == 0 or done == steps:
            loss_log.append([done, running / n_running])
            bar.set_postfix(loss=f"{running / n_running:.4f}", scale=f"{model.logit_scale.exp().item():.1f}")
            running, n_running = 0.0, 0
        bar.update(1)
        if done % checkpoint_every == 0 or done == steps:
            _save_checkpoint(out, model, state_dict(done), mean, std, max_length)
    bar.close()
    if planting:
        planting.remove()
    seconds = time.time() - t0
    model.eval()
    export(model, out, mean, std, max_length)
    result = {
        "steps": steps,
        "final_loss": loss_log[-1][1] if loss_log else None,
        "loss_log": loss_log,
        "seconds": seconds,
        "steps_per_second": (steps - resumed_from) / seconds if seconds > 0 else None,
        "device": device,
        "resumed_from": resumed_from,
        "args": meta,
    }
    in_place = init_from is not None and Path(init_from).resolve() == out.resolve()
    if in_place:
        _archive_log(out)
    (out / "train_log.json").write_text(json.dumps(result, indent=1))
    if init_from is not None and not in_place:
        _keep_stage_logs(Path(init_from), out)
    return result


def _keep_stage_logs(previous: Path, out: Path) -> None:
    """Copy the earlier stages' logs of ``previous`` (a model folder) into ``out`` as
    ``train_log_stage<k>.json``, so that the model card can cite every run."""
    logs = sorted(previous.glob("train_log_stage*.json"), key=lambda p: int(p.stem.rsplit("stage", 1)[1]))
    if (previous / "train_log.json").exists():
        logs.append(previous / "train_log.json")
    for k, log in enumerate(logs, start=1):
        (out / f"train_log_stage{k}.json").write_text(log.read_text())


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipinterp organism train``."""
    d = OrganismConfig()
    parser.add_argument("--out", default="data/shapes-clip", help="output directory")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hard-targets", action="store_true",
                        help="one positive per row (plain CLIP loss) instead of every true caption")
    parser.add_argument("--curriculum-steps", type=int, default=0,
                        help="first steps whose captions name only the position")
    parser.add_argument("--init-from", default=None, help="saved model folder (same config) to start from")
    parser.add_argument("--plant", action="append", default=[], metavar="ATTRIBUTE:L<layer>.H<head>",
                        help="planting stage (with --init-from): make this head necessary for this attribute; repeatable")
    parser.add_argument("--group-size", type=int, default=1,
                        help="scenes per contrast group (differing in one named attribute)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--num-workers", type=int, default=0, help="data-generation worker processes")
    for field, value in asdict(d).items():
        parser.add_argument("--" + field.replace("_", "-"), type=int, default=value)


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`train` from parsed :func:`add_train_arguments` arguments."""
    config = OrganismConfig(**{f: getattr(args, f) for f in asdict(OrganismConfig())})
    result = train(
        args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, seed=args.seed, device=args.device, config=config,
        resume=not args.no_resume, log_every=args.log_every,
        checkpoint_every=args.checkpoint_every, num_workers=args.num_workers,
        group_size=args.group_size, soft_targets=not args.hard_targets,
        curriculum_steps=args.curriculum_steps,
        init_from=args.init_from, plants=args.plant,
    )
    print(json.dumps({k: v for k, v in result.items() if k != "loss_log"}, indent=1))
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m clipinterp.organism.train [args]``: train and export the model."""
    parser = argparse.ArgumentParser(description="Train the shapes-world CLIP.")
    add_train_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    main()
