"""Using a trained run: dlbasics.load, scripts/predict.py and scripts/evaluate.py, with the
run's preprocessing.json applied to raw inputs."""

import csv
import io
import json
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_idx import write_idx

import dlbasics
from conftest import ROOT, make_config, read_metrics, run_cli, train_in_process
from dlbasics.data import build_data
from dlbasics.data.bundled import read_bundled
from dlbasics.errors import DataError
from dlbasics.preprocessing import FILE_NAME

SCRIPTS = ROOT / "scripts"
SHORT = ("trainer.epochs=3", "logger=none")
# One run of every model family, as short as it can be and still learn something.
FAMILIES = {
    "perceptron": ("model=perceptron", "data=or", "optim=sgd", "trainer=batch"),
    "mlp": ("model=mlp",),
    "dnn": ("model=dnn",),
    "cnn": ("model=cnn", "model.channels=[4]", "model.dense=[16]"),
    "rnn": ("model=rnn", "data=seq_digits", "model.hidden_size=16"),
    "rbm": ("model=rbm", "model.n_hidden=16"),  # inputs scaled to [0, 1], as the model needs
    "dbn": ("model=dbn", "model.layers=[32]", "model.pretrain_epochs=1"),
    "regression": ("model=mlp", "data=diabetes"),
    # an ensemble predicts with its combination of its members (ensembles.py)
    "voting": ("model=mlp", "model.hidden=[16]", "ensemble=voting", "ensemble.members=3"),
    "bagging": ("model=mlp", "model.hidden=[16]", "ensemble=bagging", "ensemble.members=3"),
    "boosting": ("model=mlp", "model.hidden=[16]", "ensemble=boosting", "ensemble.members=3"),
    "stacking": (
        "model=cnn",
        "model.channels=[4]",
        "model.dense=[16]",
        "ensemble=stacking",
        "ensemble.members=2",
        "ensemble.folds=2",
        "ensemble.meta_epochs=20",
    ),
}


class Runs:
    """family → the directory of a short run of it, trained when first asked for (each test
    worker trains only the families its tests use)."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.made = {}

    def __getitem__(self, family):
        if family not in self.made:
            run_dir = self.tmp_path_factory.mktemp(family)
            train_in_process(run_dir, *FAMILIES[family], *SHORT)
            self.made[family] = run_dir
        return self.made[family]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return Runs(tmp_path_factory)


def script(name: str, *argv: str) -> None:
    """Run scripts/<name>.py's main in this process, as its command line would."""
    runpy.run_path(str(SCRIPTS / f"{name}.py"), run_name="dlbasics_test")["main"](list(argv))


def refused(capsys, name: str, *argv: str) -> str:
    """The one-line error a script exits 2 with."""
    capsys.readouterr()  # what ran before
    with pytest.raises(SystemExit) as exit_:
        script(name, *argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predictions_on_raw_inputs_equal_the_runs_own_test_predictions(runs):
    run = dlbasics.load(runs["mlp"])
    cfg = make_config("model=mlp", *SHORT)
    data = build_data(cfg.data)  # the run's splits, standardised as it trained on them
    with torch.no_grad():
        own = run.model(data.x_test).argmax(dim=1)
    raw = data.to_raw(data.x_test)  # the pixels scikit-learn gives (0 … 16)
    assert torch.equal(raw, raw.round())  # really raw: whole grey levels
    np.testing.assert_array_equal(run.predict(raw), own.numpy())
    # scikit-learn's flat rows and 1×8×8 images are both raw inputs of the digits
    np.testing.assert_array_equal(run.predict(raw.flatten(1).numpy()), own.numpy())
    digits = read_bundled("digits").data
    images = digits[:50].reshape(-1, 1, 8, 8)
    np.testing.assert_array_equal(run.predict(digits[:50]), run.predict(images))
    proba = run.predict_proba(raw)
    assert proba.shape == (len(raw), 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(run.classes_[proba.argmax(axis=1)], run.predict(raw))
    with pytest.raises(DataError, match=r"shape \(2, 63\).*1×8×8 or rows of 64 features"):
        run.predict(np.zeros((2, 63)))


def test_predict_and_evaluate_scripts_give_the_runs_own_test_results(runs, tmp_path, capsys):
    script("predict", str(runs["mlp"]), "data=digits", "--out", str(tmp_path / "p.csv"))
    rows = csv_rows((tmp_path / "p.csv").read_text())
    run = dlbasics.load(runs["mlp"])
    data = build_data(make_config("model=mlp", *SHORT).data)
    assert [int(r["prediction"]) for r in rows] == run.predict(data.to_raw(data.x_test)).tolist()
    assert list(rows[0]) == ["prediction", *(f"p_{c}" for c in range(10))]
    script("evaluate", str(runs["mlp"]))
    evaluation = json.loads((runs["mlp"] / "evaluation.json").read_text())
    metrics = read_metrics(runs["mlp"])
    assert evaluation["test_acc"] == metrics["test_acc"]
    assert evaluation["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)
    assert evaluation["n_test"] == 359 and "test_acc" in capsys.readouterr().out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_predicts_and_evaluates(family, runs, tmp_path, capsys):
    run_dir = runs[family]
    data_name = make_config(*FAMILIES[family]).data.name
    script("predict", str(run_dir), f"data={data_name}", "--out", str(tmp_path / "p.csv"))
    rows = csv_rows((tmp_path / "p.csv").read_text())
    trained = dlbasics.load(run_dir)
    if family == "rbm":  # learned features: one column per hidden unit
        assert list(rows[0]) == [f"h{i}" for i in range(1, 17)]
    elif family == "regression":
        assert list(rows[0]) == ["prediction"]
    else:
        assert rows[0]["prediction"] in {str(c) for c in trained.classes_}
    script("evaluate", str(run_dir), "--out", str(tmp_path / "e.json"))
    evaluation = json.loads((tmp_path / "e.json").read_text())
    metrics = read_metrics(run_dir)
    assert evaluation["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)
    assert evaluation["test_acc"] == metrics["test_acc"]


def test_a_regression_predicts_in_the_targets_own_units(runs):
    run = dlbasics.load(runs["regression"])
    arrays = read_bundled("diabetes")
    saved = json.loads((runs["regression"] / FILE_NAME).read_text())
    assert saved["task"] == "regression" and saved["target"]["shift"][0] > 100  # mean ≈ 152
    predictions = run.predict(arrays.data)
    assert predictions.shape == (len(arrays.data),)
    assert 100 < predictions.mean() < 200  # days-of-disease units, not standard deviations
    assert np.corrcoef(predictions, arrays.target)[0, 1] > 0.5


def test_preprocessing_json_says_what_was_fitted(runs):
    digits = json.loads((runs["mlp"] / FILE_NAME).read_text())
    assert (digits["format"], digits["version"]) == ("dlbasics-preprocessing", 3)
    assert digits["table"] is None  # numbers as they come: nothing to encode
    assert digits["input_shape"] == [1, 8, 8] and digits["classes"] == list(range(10))
    assert digits["features"][:2] == ["pixel_0_0", "pixel_0_1"]
    assert digits["inputs"]["scaling"] == "standardize"
    assert np.array(digits["inputs"]["shift"]).shape == (1, 1, 1)  # one mean per channel
    rbm = json.loads((runs["rbm"] / FILE_NAME).read_text())
    assert rbm["inputs"]["scaling"] == "unit_range"
    assert np.array(rbm["inputs"]["scale"]).shape == (1, 8, 8)  # a range per pixel


def test_a_csv_of_new_rows_is_matched_to_the_training_columns_by_name(tmp_path, capsys):
    from test_csv_data import _iris_csv

    table = _iris_csv(tmp_path / "iris.csv")
    run_dir = tmp_path / "run"
    train_in_process(run_dir, "data=csv", f"data.path={table}", "data.target=species", *SHORT)
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    # Columns in another order, the target column kept: it is ignored.
    order = [4, 3, 2, 1, 0]
    reordered = [",".join(line.split(",")[i] for i in order) for line in lines]
    (tmp_path / "new.csv").write_text("\n".join(reordered) + "\n")
    script("predict", str(run_dir), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv"))
    rows = csv_rows((tmp_path / "p.csv").read_text())
    assert len(rows) == 150 and list(rows[0])[1:] == ["p_setosa", "p_versicolor", "p_virginica"]
    right = sum(
        r["prediction"] == line.split(",")[4] for r, line in zip(rows, lines[1:], strict=True)
    )
    assert right / 150 > 0.7
    # A feature column missing, or one training did not have: exit 2 naming them.
    (tmp_path / "less.csv").write_text("\n".join(",".join(row.split(",")[:3]) for row in lines))
    err = refused(capsys, "predict", str(run_dir), str(tmp_path / "less.csv"))
    assert "lacks the feature column(s) petal_width" in err and header[0] in err
    more = [row + ",1" for row in lines]
    more[0] = more[0].replace("species,1", "species,colour")
    (tmp_path / "more.csv").write_text("\n".join(more))
    err = refused(capsys, "predict", str(run_dir), str(tmp_path / "more.csv"))
    assert "training did not have: colour" in err
    # A table's gaps are filled as in training (data.missing=impute)
    gap = [lines[0], "," + lines[1].split(",", 1)[1], *lines[2:]]
    (tmp_path / "gap.csv").write_text("\n".join(gap))
    script("predict", str(run_dir), str(tmp_path / "gap.csv"), "--out", str(tmp_path / "g.csv"))
    assert len(csv_rows((tmp_path / "g.csv").read_text())) == 150


def test_a_csv_of_pixels_needs_a_number_in_every_cell(runs, tmp_path, capsys):
    digits = read_bundled("digits")
    header = ",".join(digits.feature_names)
    rows = [",".join(f"{v:g}" for v in row) for row in digits.data[:3]]
    (tmp_path / "ok.csv").write_text("\n".join([header, *rows]))
    script("predict", str(runs["mlp"]), str(tmp_path / "ok.csv"), "--out", str(tmp_path / "p.csv"))
    predicted = [int(r["prediction"]) for r in csv_rows((tmp_path / "p.csv").read_text())]
    assert predicted == dlbasics.load(runs["mlp"]).predict(digits.data[:3]).tolist()
    rows[1] = "," + rows[1].split(",", 1)[1]
    (tmp_path / "gap.csv").write_text("\n".join([header, *rows]))
    err = refused(capsys, "predict", str(runs["mlp"]), str(tmp_path / "gap.csv"))
    assert "row 3, column 'pixel_0_0' is empty" in err


def test_idx_images_are_read_and_a_wrong_size_is_refused(runs, tmp_path, capsys):
    digits = read_bundled("digits")
    write_idx(tmp_path / "images-idx3-ubyte", digits.data[:20].reshape(-1, 8, 8).astype(np.uint8))
    images, out = tmp_path / "images-idx3-ubyte", tmp_path / "p.csv"
    script("predict", str(runs["cnn"]), str(images), "--out", str(out))
    predicted = [int(r["prediction"]) for r in csv_rows(out.read_text())]
    assert predicted == dlbasics.load(runs["cnn"]).predict(digits.data[:20]).tolist()
    write_idx(tmp_path / "big-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8), gz=True)
    err = refused(capsys, "predict", str(runs["cnn"]), str(tmp_path / "big-idx3-ubyte.gz"))
    assert "28×28 pixels" in err and "1×8×8" in err


def test_bad_run_directories_and_overrides_are_refused(runs, tmp_path, capsys):
    err = refused(capsys, "predict", str(tmp_path), "data=digits")
    assert "has no checkpoints/best.pt" in err
    err = refused(capsys, "evaluate", str(tmp_path / "nowhere"))
    assert "no such run directory" in err
    err = refused(capsys, "evaluate", str(runs["mlp"]), "optim.lr=0.1")
    assert "only data=NAME and data.KEY=VALUE" in err
    err = refused(capsys, "evaluate", str(runs["mlp"]), "data=nonsense")
    assert "not a choice of data" in err
    err = refused(capsys, "evaluate", str(runs["mlp"]), "data=iris")  # 4 features, not 64
    assert "(1, 8, 8)" in err or "1×8×8" in err
    err = refused(capsys, "evaluate", str(runs["mlp"]), "data.val_size=lots")
    assert "data.val_size" in err or "val_size" in err
    err = refused(capsys, "evaluate", str(runs["mlp"]), "data._target_=os.system")
    assert "_target_" in err
    err = refused(capsys, "predict", str(runs["mlp"]), str(tmp_path / "missing.csv"))
    assert "no such file" in err


def test_a_run_without_preprocessing_json_is_refused(runs, tmp_path, capsys):
    copy = tmp_path / "old"
    shutil.copytree(runs["mlp"], copy)
    (copy / FILE_NAME).unlink()
    assert "preprocessing.json is missing" in refused(capsys, "evaluate", str(copy))


def test_outputs_latest_is_the_newest_run(runs, tmp_path):
    outputs = tmp_path / "outputs" / "2026-12-02"

    shutil.copytree(runs["mlp"], outputs / "10-00-00")
    shutil.copytree(runs["dnn"], outputs / "11-00-00")
    latest = dlbasics.load(tmp_path / "outputs" / "latest")
    assert latest.run_dir == outputs / "11-00-00" and latest.config.model.name == "dnn"


def test_loading_leaves_the_callers_random_numbers_alone(runs):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    dlbasics.load(runs["dnn"])
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.cli
def test_the_command_lines_as_a_user_types_them(runs, tmp_path):
    done = run_cli("trainer.epochs=2", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr

    predicted = subprocess.run(
        [sys.executable, str(SCRIPTS / "predict.py"), str(tmp_path / "run"), "data=digits"],
        capture_output=True, text=True, timeout=120,
    )
    assert predicted.returncode == 0, predicted.stderr
    assert len(csv_rows(predicted.stdout)) == 359
    evaluated = subprocess.run(
        [sys.executable, str(SCRIPTS / "evaluate.py"), str(tmp_path / "run"), "data=digits"],
        capture_output=True, text=True, timeout=120,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((tmp_path / "run" / "evaluation.json").read_text())["test_acc"] == (
        read_metrics(tmp_path / "run")["test_acc"]
    )


def test_latest_names_the_newest_sweep_for_tensorboard_and_the_newest_last_pt_for_resume(
    runs, tmp_path
):
    from dlbasics.latest import resolve_log_dir
    from dlbasics.resume import checkpoint_path

    sweep = tmp_path / "multirun" / "2026-12-02" / "10-00-00"
    shutil.copytree(runs["mlp"], sweep / "0")
    (sweep / "multirun.yaml").touch()
    shutil.copytree(runs["dnn"], sweep / "1")  # a job newer than the sweep's own file
    assert resolve_log_dir(tmp_path / "multirun" / "latest") == sweep
    assert resolve_log_dir(tmp_path / "multirun" / "0") == tmp_path / "multirun" / "0"
    # trainer.resume=outputs/latest: the newest run with a last.pt, not the run just started
    outputs = tmp_path / "outputs" / "2026-12-02"
    shutil.copytree(runs["mlp"], outputs / "10-00-00")
    (outputs / "11-00-00").mkdir()
    (outputs / "11-00-00" / FILE_NAME).write_text("{}")  # the resuming run itself
    found = checkpoint_path(str(tmp_path / "outputs" / "latest"))
    assert found == outputs / "10-00-00" / "checkpoints" / "last.pt"
