"""Where the time of a sampled run goes: a py-spy ``--format raw`` profile summed by function.

    py-spy record -p PID -r 20 -d 75 -f raw -o profile.txt      # a running evaluation or trainer
    python scripts/pyspy_summary.py profile.txt --output results/cpu-profile/eval-sft.md

Writes a Markdown table of the functions holding the most samples, by self time (the function itself
on top of the stack) and by inclusive time (anywhere on the stack), as shares of all samples.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def read_raw(path: Path) -> tuple[Counter, Counter, int]:
    """``(self, inclusive, total)`` sample counts per frame of a py-spy raw (collapsed-stack) file."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            raise SystemExit(f"{path}:{number}: not a py-spy raw line (frames;frames COUNT): {line[:80]!r}")
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):  # a recursive frame counts once per sample
            inclusive[frame] += n
    return own, inclusive, total


def table(counts: Counter, total: int, top: int) -> list[str]:
    lines = ["| share of samples | function (file:line) |", "|---:|---|"]
    for frame, n in counts.most_common(top):
        lines.append(f"| {100 * n / total:.1f} % | `{frame}` |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--output", type=Path, required=True, help="Markdown file to write")
    parser.add_argument("--top", type=int, default=25, help="rows per table (functions)")
    parser.add_argument("--title", default=None, help="heading (default: the profile's file name)")
    args = parser.parse_args(argv)
    if not args.profile.is_file():
        raise SystemExit(f"pyspy_summary.py: no profile at {args.profile}")
    own, inclusive, total = read_raw(args.profile)
    if total == 0:
        raise SystemExit(f"pyspy_summary.py: {args.profile} holds no samples")
    text = [
        f"# {args.title or args.profile.name}",
        "",
        f"{total} samples from `{args.profile.name}`.",
        "",
        "## Self time (the function on top of the stack)",
        "",
        *table(own, total, args.top),
        "",
        "## Inclusive time (the function anywhere on the stack)",
        "",
        *table(inclusive, total, args.top * 2),
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(text))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
