"""How long ``find_images`` takes to expand folders and globs, next to ``glob.glob(recursive=True)``.

``find_images`` walks globs component by component (so that an unreadable folder raises and ``**``
cannot loop through symlinks) and dedupes files reached through symlinked folders. This measures
what that costs on a synthetic tree of empty files (median of ``--runs``, both in the same run).

    .venv/bin/python bench/bench_find_images.py [--folders 200] [--files 100] [--runs 7]
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preflight.screening import find_images


def build_tree(root: Path, folders: int, files: int) -> None:
    for i in range(folders):
        folder = root / f"d{i % 20}" / f"e{i}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(files):
            (folder / f"f{j}.jpg").touch()


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folders", type=int, default=200)
    parser.add_argument("--files", type=int, default=100, help="files per folder")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_tree(root, args.folders, args.files)
        os.chdir(root)
        print(f"{args.folders * args.files} files in {args.folders} folders; median of {args.runs} runs")
        print(f"{'pattern':16} {'found':>7} {'find_images':>12} {'glob.glob':>10} {'ratio':>6}")
        for pattern in ("**/*.jpg", "d1*/**/*.jpg", "*/*/f1*.jpg"):
            ours = find_images(pattern)
            theirs = glob.glob(pattern, recursive=True)
            assert sorted(ours) == sorted(theirs), pattern
            t_ours = median_seconds(lambda p=pattern: find_images(p), args.runs)
            t_glob = median_seconds(lambda p=pattern: glob.glob(p, recursive=True), args.runs)
            print(f"{pattern:16} {len(ours):7d} {t_ours * 1000:10.1f}ms {t_glob * 1000:8.1f}ms {t_ours / t_glob:6.2f}")
        t_folder = median_seconds(lambda: find_images("."), args.runs)
        print(f"{'. (a folder)':16} {len(find_images('.')):7d} {t_folder * 1000:10.1f}ms")


if __name__ == "__main__":
    main()
