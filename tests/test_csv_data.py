"""`data=csv`: the user's own table, with errors that name the file, the row and the column."""

import pytest

from conftest import make_config, read_metrics, run_cli, train_in_process
from dlbasics.data import build_data
from dlbasics.errors import DataError


def _iris_csv(path, label=lambda i: ["setosa", "versicolor", "virginica"][i]):
    """scikit-learn's iris as a user would have it: a header row and text labels."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    lines = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    for x, t in zip(bunch.data, bunch.target, strict=True):
        lines.append(",".join(f"{v:g}" for v in x) + f",{label(t)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_with_text_labels_trains(tmp_path):
    table = _iris_csv(tmp_path / "iris.csv")
    train_in_process(
        tmp_path / "run", "data=csv", f"data.path={table}", "data.target=species", "logger=none"
    )
    metrics = read_metrics(tmp_path / "run")
    assert (metrics["task"], metrics["n_train"]) == ("multiclass", 90)
    assert metrics["test_acc"] >= 0.85


def test_the_task_is_inferred_and_can_be_set(tmp_path):
    table = _iris_csv(tmp_path / "iris.csv", label=str)  # labels 0, 1, 2
    common = ["data=csv", f"data.path={table}"]
    assert build_data(make_config(*common, "data.target=species").data).spec.task == "multiclass"
    spec = build_data(make_config(*common, "data.target=petal_width").data).spec
    assert (spec.task, spec.input_shape) == ("regression", (4,))
    forced = make_config(*common, "data.target=species", "data.task=regression").data
    assert build_data(forced).spec.task == "regression"
    metrics = train_in_process(
        tmp_path / "run", *common, "data.target=petal_width", "trainer.epochs=2", "logger=none"
    )
    assert metrics["task"] == "regression" and metrics["test_acc"] is None


TABLE = "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n9,10,x\n11,12,y\n"


REFUSE_GAPS = "data.missing=error"


@pytest.mark.parametrize(
    "text, target, words",
    [
        (TABLE, "price", ["data.target='price' is not a column", "a, b, label"]),
        (TABLE.replace("5,6", "5,six"), "label", ["row 4", "column 'b'", "'six' is not a number"]),
        (TABLE.replace("7,8", "7,"), "label", ["row 5", "column 'b'", "is empty", REFUSE_GAPS]),
        (TABLE.replace("9,10", "nan,10"), "label", ["row 6", "column 'a'", REFUSE_GAPS]),
        (TABLE.replace("9,10", "inf,10"), "label", ["row 6", "column 'a'", "not a finite number"]),
        (TABLE.replace("3,4,y", "3,4"), "label", ["row 3", "2 fields", "3 columns"]),
        ("a,b,label\n", "label", ["no data rows"]),
        ("", "label", ["is empty"]),
        ("a,label\n1,x\n2,x\n3,x\n", "label", ["single value ('x')"]),
        ("a,a,label\n1,2,x\n", "label", ["'a' more than once"]),
    ],
)
def test_a_bad_table_names_file_row_and_column(tmp_path, text, target, words):
    table = tmp_path / "table.csv"
    table.write_text(text)
    policy = [word for word in words if word.startswith("data.missing=")]
    overrides = ["data=csv", f"data.path={table}", f"data.target={target}", *policy]
    with pytest.raises(DataError) as error:
        build_data(make_config(*overrides).data)
    assert f"data.path={table}" in str(error.value)
    for word in words:
        if word not in policy:
            assert word in str(error.value), (word, str(error.value))


def test_a_missing_file_or_a_directory_is_named(tmp_path):
    for path, words in [(tmp_path / "nope.csv", "no such file"), (tmp_path, "is a directory")]:
        with pytest.raises(DataError, match=words) as error:
            build_data(make_config("data=csv", f"data.path={path}", "data.target=y").data)
        assert str(path) in str(error.value)


def test_a_binary_file_is_not_taken_for_a_table(tmp_path):
    table = tmp_path / "table.csv"
    table.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        build_data(make_config("data=csv", f"data.path={table}", "data.target=y").data)


def test_a_data_error_leaves_no_half_written_run(tmp_path):
    table = tmp_path / "table.csv"
    table.write_text(TABLE.replace("5,6", "5,six"))
    result = run_cli(
        f"hydra.run.dir={tmp_path / 'run'}", "data=csv", f"data.path={table}", "data.target=label"
    )
    assert result.returncode == 2 and "row 4" in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "tb").exists()
