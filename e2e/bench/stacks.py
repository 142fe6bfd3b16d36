"""Where the time goes in py-spy's collapsed stacks (``--format raw``): the functions with the most samples, self
and inclusive, and the share of samples under each of a few named frames.

    python -m e2e.bench.stacks profile-dir/tideover-tolerating-*.txt
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path


def read(paths: Iterable[Path]) -> list[tuple[list[str], int]]:
    stacks: list[tuple[list[str], int]] = []
    for path in paths:
        for line in path.read_text().splitlines():
            head, _, count = line.rpartition(" ")
            if head and count.isdigit():
                stacks.append((head.split(";"), int(count)))
    return stacks


def _name(frame: str) -> str:
    """'function (module/path.py:123)' -> 'function (module/path.py)'."""
    function, _, where = frame.partition(" (")
    return f"{function} ({where.rsplit(':', 1)[0]})" if where else function


def summary(stacks: list[tuple[list[str], int]], top: int) -> str:
    total = sum(count for _, count in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        names = [_name(f) for f in frames]
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    lines = [f"{total} samples (threads not idle)", "", "self %  function"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in own.most_common(top)]
    lines += ["", "incl %  function"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench.stacks", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    print(summary(read(args.files), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
