"""`make bench`: run every benchmark, print the table, write benchmarks/results/<machine>-<date>.json and .md.

python -m benchmarks                  # all of them
python -m benchmarks markets worlds   # some: their rows replace today's rows of the same name, others stay
"""

from __future__ import annotations

import sys

from benchmarks import art, kernels, markets, molecules, training_loop, worlds
from benchmarks.harness import markdown_table, write_results

BENCHMARKS = {
    "kernels": kernels,
    "training_loop": training_loop,
    "molecules": molecules,
    "markets": markets,
    "worlds": worlds,
    "art": art,
}


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    rows = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr)
        rows += BENCHMARKS[name].run()
    print(markdown_table(rows))
    json_path, md_path = write_results(rows)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
