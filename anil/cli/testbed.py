"""`anil testbed`: the theory testbed (anil/testbed/): Theorems 1-2 and Propositions 2-3 tested
where the constants are set, every stage written to one JSON file as it finishes.

    anil testbed                      # the whole suite into docs/data/testbed.json (resumes a stopped one)
    anil testbed --quick --out FILE   # every stage at toy size (about 2 minutes): a rehearsal
    anil testbed --out FILE seeds=20 kappas=4,10,40 grid=1,2,4,8   # any field of the plan (suite.py's Plan)

Then `anil report theory` renders docs/theory.md's testbed section from that file.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch

from anil.cli.arguments import OneLineParser
from anil.testbed.suite import QUICK, Plan, run, with_changes

log = logging.getLogger("anil.testbed")


def main(args: list[str]) -> int:
    parser = OneLineParser(
        prog="anil testbed",
        description="the theory testbed: Theorems 1-2 and Propositions 2-3 where the constants are set",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/data/testbed.json"), help="the JSON file to write")
    parser.add_argument("--quick", action="store_true", help="every stage at toy size (a rehearsal, not evidence)")
    parser.add_argument("changes", nargs="*", metavar="key=value", help="a field of the plan (anil/testbed/suite.py)")
    options = parser.parse_args(args)
    try:
        plan = with_changes(QUICK if options.quick else Plan(), options.changes)
    except ValueError as error:
        print(f"anil testbed: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    out: Path = options.out
    if not out.parent.is_dir():
        print(f"anil testbed: {out.parent} does not exist; create it or pass another --out", file=sys.stderr)
        return 1
    begun = time.perf_counter()
    try:
        record = run(plan, out)
    except ValueError as error:
        print(f"anil testbed: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"anil testbed: cannot write {out}: {error.strerror or error}; free space or pass another --out",
            file=sys.stderr,
        )
        return 1
    log.info("testbed: %d stages in %s (%.0f s this session, %d threads)", len(record["stages"]), out,
             time.perf_counter() - begun, torch.get_num_threads())  # fmt: skip
    return 0
