"""``python -m hop_train.experiment {run,report} --config experiments/<scale>.yaml``."""

from __future__ import annotations

import argparse
import sys

from . import STAGES, load_config, run_stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hop_train.experiment", description=__doc__)
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--config", required=True, help="experiments/<scale>.yaml")
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), help="run only these (default: all, in order)")
    parser.add_argument("--out", default=None, help="report: the Markdown file (default docs/results.md; smoke: under the work dir)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except (OSError, ValueError) as exc:
        print(f"experiment: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        try:
            run_stages(cfg, args.stages)
        except (RuntimeError, ValueError) as exc:  # a failed unit; a config the recorded run refuses
            print(f"experiment: {exc}", file=sys.stderr)
            print("experiment: finished units are kept; run the same command again to resume", file=sys.stderr)
            return 1
        return 0
    from .report import render

    path = render(cfg, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
