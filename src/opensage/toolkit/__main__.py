"""`python -m opensage.toolkit train`: the program a script-mode training job runs."""

from __future__ import annotations

import sys

from opensage.toolkit.trainer import train

USAGE = "usage: python -m opensage.toolkit train"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["train"]:
        print(USAGE, file=sys.stderr)
        return 2
    return train()


if __name__ == "__main__":
    sys.exit(main())
