"""`make bench`: run every benchmark, print the table, write benchmarks/results/<machine>-<date>.json and .md."""

from __future__ import annotations

import sys

from benchmarks import art, markets, training_loop, worlds
from benchmarks.harness import markdown_table, write_results

BENCHMARKS = [training_loop, markets, worlds, art]


def main() -> int:
    rows = []
    for mod in BENCHMARKS:
        print(f"running {mod.__name__} ...", file=sys.stderr)
        rows += mod.run()
    print(markdown_table(rows))
    json_path, md_path = write_results(rows)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
