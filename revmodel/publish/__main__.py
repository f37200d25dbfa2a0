"""``python -m revmodel.publish check PACK_DIR``: check a published pack (exit 1 on problems)."""

from __future__ import annotations

import argparse
import sys

from revmodel.publish.pack import check_pack


def main(argv: list[str] | None = None) -> int:
    """Check a published pack; print its problems; exit 1 when there are any."""
    parser = argparse.ArgumentParser(prog="python -m revmodel.publish")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="check a published plan pack")
    c.add_argument("pack", help="the pack folder, e.g. reports/FY2027-Q1")
    args = parser.parse_args(argv)
    problems = check_pack(args.pack)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    print(f"{args.pack}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
