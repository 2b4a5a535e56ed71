"""The test metrics of a trained run's best.pt: on its own test split, or on the test split
of other data of the same shape; printed, and written as JSON.

.venv/bin/python scripts/evaluate.py outputs/latest
.venv/bin/python scripts/evaluate.py RUN_DIR data.seed=1             # another split of its data
.venv/bin/python scripts/evaluate.py RUN_DIR data=idx data.root=$HOME/data/mnist
.venv/bin/python scripts/evaluate.py RUN_DIR --checkpoint last --out last.json

Overrides choose the data (data=NAME, data.KEY=VALUE) and pass the same safety checks as
training's. The run's preprocessing (preprocessing.json) is applied to the data, as training
applied it. Writes RUN_DIR/evaluation.json unless --out says otherwise. Exit status: 0, or 2
with one line on stderr for a mistake in the input (dlbasics/cli.py).
"""

import argparse
import json
from pathlib import Path

from dlbasics.checkpoint import write_json
from dlbasics.cli import fail
from dlbasics.config_guard import refuse_code_in_arguments
from dlbasics.errors import UserError
from dlbasics.inference import CHECKPOINTS, data_config, evaluate, load

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the run's directory (outputs/…)")
    parser.add_argument("overrides", nargs="*", help="data=NAME, data.KEY=VALUE")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best", help="best or last")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", type=Path, help="default: RUN_DIR/evaluation.json")
    args = parser.parse_args(argv)
    try:
        refuse_code_in_arguments(args.overrides)
        trained = load(args.run_dir, args.checkpoint)
        metrics = evaluate(trained, data_config(trained, args.overrides, CONFIGS), args.device)
        out = args.out or trained.run_dir / "evaluation.json"
        write_json(metrics, out)
    except UserError as error:
        fail(str(error))
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
