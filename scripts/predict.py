"""Predict with a trained run: one CSV row per input, its prediction and, for classifiers,
each class's probability.

.venv/bin/python scripts/predict.py outputs/latest data=digits --out predictions.csv
.venv/bin/python scripts/predict.py RUN_DIR new_rows.csv           # columns named as in training
.venv/bin/python scripts/predict.py RUN_DIR t10k-images-idx3-ubyte.gz --checkpoint last
.venv/bin/python scripts/predict.py RUN_DIR data=iris data.seed=1  # another split of a bundled set

For a sequence-to-sequence run (model=seq2seq), INPUT is a text file of whitespace-separated
token sequences, one per line; the decoded output sequences are printed one per line:

.venv/bin/python scripts/predict.py RUN_DIR numbers.txt             # `1 2 5` → one hundred …

Otherwise INPUT is a CSV table of raw feature rows (the training target's column, if present, is
ignored), an MNIST-format (IDX) image file, or data=NAME [data.KEY=VALUE ...]: the raw test
split of that data set (the run's own split when NAME is the run's data). The run's
preprocessing (preprocessing.json) is applied to the inputs. Exit status: 0, or 2 with one
line on stderr for a mistake in the input (dlbasics/cli.py).
"""

import argparse
import csv
import io
import sys
from pathlib import Path

from dlbasics.checkpoint import atomic_write
from dlbasics.cli import fail
from dlbasics.config_guard import refuse_code_in_arguments
from dlbasics.errors import UserError
from dlbasics.inference import (
    CHECKPOINTS,
    data_config,
    load,
    prediction_table,
    raw_splits,
    source_tokens,
    translate,
)
from dlbasics.inputs import read_inputs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the run's directory (outputs/…)")
    parser.add_argument("input", help="a CSV file, an IDX image file, or data=NAME")
    parser.add_argument("overrides", nargs="*", help="with data=NAME: data.KEY=VALUE overrides")
    parser.add_argument("--out", type=Path, help="the CSV file to write (default: stdout)")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best", help="best or last")
    args = parser.parse_args(argv)
    try:
        from_data = args.input.startswith("data=")
        if args.overrides and not from_data:
            raise UserError(f"{args.overrides[0]}: overrides go with INPUT data=NAME only.")
        refuse_code_in_arguments([args.input, *args.overrides] if from_data else args.overrides)
        trained = load(args.run_dir, args.checkpoint)
        if trained.preprocessing.task == "seq2seq" and not from_data:
            write_output(translated(trained, Path(args.input)), args.out, "translations")
            return
        if from_data:
            x = raw_splits(data_config(trained, [args.input, *args.overrides], CONFIGS)).x_test
        else:
            target = getattr(trained.config.data, "target", None)  # data=csv: ignored if there
            x = read_inputs(Path(args.input), trained.preprocessing, {target} - {None})
        header, rows = prediction_table(trained, x)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        write_output(text.getvalue(), args.out, f"{len(rows)} predictions")
    except UserError as error:
        fail(str(error))


def translated(trained, path: Path) -> str:
    """A seq2seq run's outputs for the token sequences in ``path``, one line each."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot be read ({error.strerror or error}).") from None
    sources = source_tokens(lines, trained.preprocessing, str(path))
    return "".join(line + "\n" for line in translate(trained, sources))


def write_output(text: str, out: Path | None, what: str) -> None:
    """``text`` to stdout, or written atomically to ``out``."""
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write(out, text.encode())
        print(f"wrote {what} to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
