"""Attention, the Transformer and sequence-to-sequence (issue 25): the data sets, the models'
masks (no look at future targets, no trace of padding), the loss, a whole run's metrics,
TensorBoard and predict.py."""

import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, cli_env, make_config, read_metrics, train_in_process, train_or_refuse
from dlbasics.data import build_data
from dlbasics.data.translation import BOS, EOS, PAD, SPECIALS, decode, number_words
from dlbasics.losses import Objective, RegConfig
from dlbasics.models import build_model

TINY = [
    "model.d_model=16",
    "model.heads=2",
    "model.layers=1",
    "model.ff=16",
    "model.hidden_size=16",
]
SEQ2SEQ_MODELS = [
    ["model.arch=transformer"],
    ["model.arch=recurrent", "model.attention=none"],
    ["model.arch=recurrent", "model.attention=dot", "cell=gru"],
    ["model.arch=recurrent", "model.attention=additive"],
]


def _data(*overrides):
    return build_data(make_config(*overrides).data)


def _model(data_overrides, model_overrides):
    torch.manual_seed(0)
    cfg = make_config("model=seq2seq", *data_overrides, *TINY, *model_overrides)
    data = build_data(cfg.data)
    model = build_model(cfg, data.spec)
    model.prepare(data)
    return model, data


def test_numbers_are_written_in_english_words():
    assert number_words(0) == ["zero"]
    assert number_words(125) == "one hundred twenty five".split()
    assert number_words(1013) == "one thousand thirteen".split()
    assert number_words(40_090) == "forty thousand ninety".split()
    data = _data("data=numbers", "data.max_value=999")
    sources = decode(torch.cat([data.x_train, data.x_val, data.x_test]), data.vocabulary)
    targets = decode(torch.cat([data.y_train, data.y_val, data.y_test]), data.vocabulary)
    pairs = dict(zip(sources, targets, strict=True))
    assert len(pairs) == 1000  # every number once: no split shares one
    assert pairs["1 2 5"] == "one hundred twenty five"
    assert data.vocabulary[:3] == SPECIALS and data.spec.task == "seq2seq"
    assert data.spec.input_shape == (3,) and data.spec.target_length == 5  # 4 words + <eos>
    assert torch.all((data.y_train == EOS).sum(dim=1) == 1)


@pytest.mark.parametrize("task", ["reverse", "sort"])
def test_digit_strings_are_reversed_or_sorted_and_never_shared(task):
    data = _data(f"data={task}", "data.length=6", "data.n_samples=500")
    splits = [(data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)]
    x = torch.cat([s[0] for s in splits])
    assert len(torch.unique(x, dim=0)) == len(x) == 500
    assert data.spec.input_shape == (6,) and data.spec.target_length == 7
    for source, target in splits:
        expected = source.flip(1) if task == "reverse" else source.sort(dim=1).values
        assert torch.equal(target[:, :6], expected) and torch.all(target[:, 6] == EOS)


def test_too_many_strings_for_their_length_is_refused():
    with pytest.raises(Exception, match="data.n_samples=400"):
        _data("data=reverse", "data.length=2", "data.n_samples=400")


@pytest.mark.parametrize("model_overrides", SEQ2SEQ_MODELS, ids=lambda o: "-".join(o)[11:])
def test_the_decoder_never_sees_later_target_tokens(model_overrides):
    model, data = _model(["data=reverse", "data.length=6", "data.n_samples=100"], model_overrides)
    model.train()  # teacher forcing; dropout is 0
    x, y = data.x_train[:8], data.y_train[:8]
    changed = y.clone()
    changed[:, 3] = (changed[:, 3] + 1 - 3) % 10 + 3  # another digit at target step 3
    before, after = model(x, y), model(x, changed)
    # step t reads target t − 1: steps 0 … 3 cannot know of the change, later ones do
    assert torch.allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert not torch.allclose(before[:, 4:], after[:, 4:], atol=1e-4)


@pytest.mark.parametrize("model_overrides", SEQ2SEQ_MODELS, ids=lambda o: "-".join(o)[11:])
def test_padding_of_the_source_changes_nothing(model_overrides):
    model, data = _model(["data=numbers", "data.max_value=999"], model_overrides)
    model.eval()
    x = data.x_val[:16]
    assert (x == PAD).any()  # numbers below 100 are padded
    padded = torch.cat([x, torch.full((16, 2), PAD)], dim=1)
    assert torch.allclose(model(x), model(padded), atol=1e-5)


def test_greedy_decoding_feeds_back_its_own_choices():
    model, data = _model(["data=reverse", "data.length=5", "data.n_samples=100"], [])
    model.eval()
    x = data.x_val[:4]
    scores = model(x)
    assert scores.shape == (4, data.spec.target_length, data.spec.n_outputs)
    chosen = scores.argmax(dim=-1)
    model.train()  # teacher-forced on its own choices, the decoder gives the same scores
    with torch.no_grad():
        model.positions.dropout.p = 0.0
        assert torch.allclose(model(x, chosen), scores, atol=1e-5)


def test_loss_and_exact_match_ignore_padding():
    spec = _data("data=reverse", "data.length=3", "data.n_samples=50").spec
    objective = Objective("cross_entropy", "softmax", spec, RegConfig())
    target = torch.tensor([[5, 6, EOS, PAD, PAD]])
    scores = torch.randn(1, 5, spec.n_outputs)
    other = scores.clone()
    other[:, 3:] = torch.randn(1, 2, spec.n_outputs)  # at the <pad> steps only
    assert torch.equal(objective(scores, target), objective(other, target))
    assert torch.equal(objective.sample_losses(scores, target), objective(scores, target)[None])
    right = torch.full((1, 5, spec.n_outputs), -9.0)
    right[0, torch.arange(5), torch.tensor([5, 6, EOS, BOS, 7])] = 9.0  # wrong only at <pad>
    assert objective.correct(right, target).item() == 1


def test_transformer_encoder_many_to_many_is_causal():
    torch.manual_seed(0)
    cfg = make_config("model=transformer", "data=sine", "data.many_to_many=true", *TINY[:4])
    model = build_model(cfg, build_data(cfg.data).spec).eval()
    x = torch.randn(2, 20, 1)
    later = x.clone()
    later[:, 12:] += 1.0
    before, after = model(x), model(later)
    assert before.shape == (2, 20, 1)
    assert torch.allclose(before[:, :12], after[:, :12], atol=1e-6)
    assert not torch.allclose(before[:, 12:], after[:, 12:])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model=seq2seq", "data=digits"], "needs a sequence-to-sequence data set"),
        (["model=mlp", "data=reverse"], "needs model=seq2seq"),
        (["model=transformer", "data=reverse"], "model=seq2seq for token sequences"),
        (["model=seq2seq", "data=reverse", "model.heads=3"], "must divide model.d_model=64"),
        (["model=seq2seq", "data=reverse", "model.attention=none"], "model.arch=recurrent"),
        (["model=seq2seq", "data=reverse", "trainer.early_stopping.monitor=val_acc"], "val_exact"),
        (["model=seq2seq", "data=reverse", "loss=mse"], "sequence-to-sequence task"),
    ],
)
def test_mistakes_are_refused_in_one_line(overrides, expected, tmp_path):
    message = train_or_refuse([*overrides, "trainer.epochs=1", "logger=none"], tmp_path)
    assert expected in message and "\n" not in message


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    """A tiny Transformer seq2seq run on reversing 4 digits, its best epoch by val_exact."""
    run_dir = tmp_path_factory.mktemp("reverse")
    metrics = train_in_process(
        run_dir,
        "model=seq2seq",
        "data=reverse",
        "data.length=4",
        "data.n_samples=300",
        *TINY,
        "trainer.epochs=2",
        "trainer.early_stopping.monitor=val_exact",
        "trainer.checkpoint_every=1",
    )
    return run_dir, metrics


def test_a_run_reports_token_accuracy_and_exact_match(reverse_run):
    run_dir, metrics = reverse_run
    assert metrics == read_metrics(run_dir)
    for split in ("train", "val", "test"):
        assert 0 <= metrics[f"{split}_exact"] <= metrics[f"{split}_token_acc"] <= 1
    assert metrics["test_acc"] is None and metrics["monitor"] == "val_exact"
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"token_acc/val", "exact/val", "exact/train", "loss/val"} <= set(scalars)
    images = events.Tags()["images"]
    assert "attention/encoder_layer1_head2" in images
    assert "attention/decoder_source_layer1_head1" in images
    text = events.Tensors("translations/val/text_summary")[-1].tensor_proto.string_val[0]
    assert b"| source | target | prediction |" in text


def test_token_accuracy_can_be_the_early_stopping_monitor(tmp_path):
    """val_token_acc is watched as an accuracy (higher is better), as val_exact is."""
    metrics = train_in_process(
        tmp_path, "model=seq2seq", "data=reverse", "data.length=4", "data.n_samples=300", *TINY,
        "trainer.epochs=4", "optim.lr=0.02", "trainer.early_stopping.monitor=val_token_acc",
    )  # fmt: skip
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0}).Reload()
    per_epoch = [event.value for event in events.Scalars("token_acc/val")]
    assert len(set(per_epoch)) > 1 and metrics["monitor"] == "val_token_acc"
    assert metrics["best_monitor"] == pytest.approx(max(per_epoch))


def _predict(run_dir, input_file):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "predict.py"), str(run_dir), str(input_file)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )


def test_predict_translates_token_lines_and_names_unknown_tokens(reverse_run, tmp_path):
    run_dir, _ = reverse_run
    lines = tmp_path / "input.txt"
    lines.write_text("1 2 3 4\n\n9 8 7\n")
    done = _predict(run_dir, lines)
    assert done.returncode == 0, done.stderr
    outputs = done.stdout.splitlines()
    assert len(outputs) == 2 and all(set(o.split()) <= set("0123456789") for o in outputs)
    lines.write_text("1 2 3 4\n1 x 3\n")
    refused = _predict(run_dir, lines)
    assert refused.returncode == 2
    assert "line 2: unknown token 'x'" in refused.stderr and len(refused.stderr.splitlines()) == 1


@pytest.mark.slow
def test_the_transformer_translates_numbers_into_words(tmp_path):
    metrics = train_in_process(
        tmp_path, "model=seq2seq", "data=numbers", "trainer.epochs=40", "logger=none",
        "trainer.early_stopping.monitor=val_exact",
    )  # fmt: skip
    assert metrics["test_exact"] >= 0.95
