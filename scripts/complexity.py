"""ANIL against MAML per meta-iteration (Table 2), measured: writes docs/data/complexity.json and
regenerates docs/complexity.md from it. See anil/analysis/complexity.py.

    .venv/bin/python scripts/complexity.py                        # about 3 minutes on 2 CPU cores
    .venv/bin/python scripts/complexity.py --N 1 5 --repeats 1 --json /tmp/c.json --no-doc   # a quick look
"""

import argparse
import sys
from pathlib import Path

import torch

from anil.analysis.complexity import measure_all
from anil.analysis.reports import complexity
from anil.atomic import write_json_atomic

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", nargs="+", type=int, default=[1, 5, 10])
    parser.add_argument("--B", type=int, default=8, help="tasks per meta-batch (default 8: MAML loops over tasks)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--lam", type=float, default=0.01)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "data" / "complexity.json")
    parser.add_argument("--no-doc", action="store_true", help="write the JSON only, not docs/complexity.md")
    parser.add_argument(
        "--units-only", action="store_true", help="only the unit prices (what one counted operation costs), no rows"
    )
    options = parser.parse_args()
    command = " ".join([".venv/bin/python scripts/complexity.py", *sys.argv[1:]])
    data = measure_all(
        [] if options.units_only else options.N,
        options.B,
        options.repeats,
        options.alpha,
        options.lam,
        torch.device(options.device),
        command,
    )
    options.json.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(options.json, data)
    print(f"wrote {options.json}")
    if not options.no_doc:
        print(f"wrote {complexity.write(options.json, REPO / 'docs' / 'complexity.md')}")


if __name__ == "__main__":
    main()
