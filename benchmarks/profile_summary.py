"""Summarise py-spy collapsed stacks: the functions with the largest inclusive share.

uv run python benchmarks/profile_summary.py /tmp/prof/claim-64.txt [--top 25]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only frames containing this text")
    parser.add_argument("--by-file", action="store_true", help="self time per source file")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in args.file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        if "process " in stack.split(";")[0] and len(stack.split(";")) < 3:
            continue
        total += n
        if args.by_file:
            leaf = stack.split(";")[-1]
            where = leaf[leaf.find("(") + 1 : leaf.rfind(":")]
            inclusive["/".join(where.split("/")[:2])] += n
            continue
        for frame in set(stack.split(";")):
            if args.match in frame:
                inclusive[frame] += n
    for frame, n in inclusive.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {frame[:150]}")


if __name__ == "__main__":
    main()
