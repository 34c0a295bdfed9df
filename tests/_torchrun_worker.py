"""``decompose_dataset`` over synthetic images in a process of its own: under ``torchrun`` (every rank
writes its shards), or alone and slowed down so that a test can kill it partway."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image


class SyntheticImages(torch.utils.data.Dataset):
    """``n`` reproducible random RGB images with labels, ``(image, i % 3)``; items in ``bad`` cannot be
    read; each read takes ``delay`` seconds."""

    def __init__(self, n: int, bad: tuple[int, ...] = (), delay: float = 0.0):
        self.n, self.bad, self.delay = n, set(bad), delay

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        time.sleep(self.delay)
        if i in self.bad:
            raise OSError(f"image {i} is corrupt")
        pixels = np.random.RandomState(i).randint(0, 256, (36, 44, 3), dtype=np.uint8)
        return Image.fromarray(pixels), i % 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--n-items", type=int, required=True)
    parser.add_argument("--shard-size", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--bad", type=int, nargs="*", default=[])
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    torch.set_num_threads(2)  # as in the tests' own process, so the tensors compare bit for bit

    import clipinterp
    from clipinterp.streaming import decompose_dataset

    model = clipinterp.load(args.model)
    decompose_dataset(model, SyntheticImages(args.n_items, tuple(args.bad), args.delay), args.out, batch_size=args.batch_size,
                      shard_size=args.shard_size, tokens=True, layers=[2], progress=False)


if __name__ == "__main__":
    main()
