"""How long taking one training batch out of an in-memory data set takes: advanced indexing
(``images[index]``, what ``BatchLoader`` did before commit a536f13) against ``index_select`` (what
it does since), on real MNIST as the loader holds it (uint8, N x 1 x 28 x 28), one torch thread.
Both give the same batch (checked). docs/speed.md quotes it.

    python benchmarks/cpu/batch_gather.py [--data-dir ../shared/data] [--batch-size 128] [--repeats 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from nuat.data import load_dataset
from nuat.train.meta import git_commit, machine


def microseconds(fn, repeats: int) -> float:  # noqa: ANN001
    """Median over 5 blocks of ``repeats`` calls, per call."""
    fn()
    blocks = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        blocks.append((time.perf_counter() - start) / repeats * 1e6)
    return sorted(blocks)[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args(argv)
    if not Path(args.data_dir, "mnist").is_dir():
        print(f"batch_gather.py: error: no mnist/ folder in --data-dir {args.data_dir}", file=sys.stderr)
        return 2
    if args.batch_size < 1 or args.repeats < 1:
        print("batch_gather.py: error: --batch-size and --repeats must be positive", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    images = load_dataset("mnist", "train", data_dir=args.data_dir).images
    index = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:args.batch_size]
    assert torch.equal(images[index], images.index_select(0, index))
    advanced = microseconds(lambda: images[index], args.repeats)
    selected = microseconds(lambda: images.index_select(0, index), args.repeats)
    print(f"MNIST {tuple(images.shape)} {images.dtype}, batch {args.batch_size}: images[index] {advanced:.1f} us, "
          f"index_select {selected:.1f} us ({advanced / selected:.1f}x)")
    print(f"machine: {machine()}; commit {git_commit()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
