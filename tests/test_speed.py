"""Speed settings: fused optimizers, mixed precision (trainer.precision), torch.compile
(trainer.compile), CUDA (skipped without a GPU) and the benchmark script."""

import importlib.util
import json
import subprocess
import sys
import time
import warnings
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from conftest import ROOT, make_config, train_in_process
from dlbasics.cores import allowed_cores, busy_elsewhere
from dlbasics.data import build_data
from dlbasics.errors import ConfigError
from dlbasics.losses import build_objective
from dlbasics.models import build_model
from dlbasics.optim import OPTIMIZERS, build_optimizer
from dlbasics.run import ALL_THREADS, SMALL_MODEL_PARAMS, set_threads
from dlbasics.trainer import Trainer

QUIET = ["logger=none"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def fitted(*overrides: str, device: str = "cpu") -> tuple[torch.nn.Module, Trainer, object]:
    """A model, its trainer and the fit's result, for the given overrides."""
    cfg = make_config(*QUIET, *overrides)
    data = build_data(cfg.data)
    torch.manual_seed(cfg.trainer.seed)
    model = build_model(cfg, data.spec)
    objective = build_objective(cfg.loss.name, "auto", data.spec, cfg.reg, cfg.model.name)
    trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, torch.device(device))
    return model, trainer, trainer.fit(model, data, objective)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_updates_all_parameters_at_once(name):
    # PyTorch's CPU default loops over the parameters in Python, several times slower.
    model = torch.nn.Linear(3, 2)
    cfg = make_config(f"optim={name}").optim
    optimizer = build_optimizer(model.parameters(), cfg, torch.device("cpu"))
    assert optimizer.defaults.get("fused") or optimizer.defaults.get("foreach")


def test_bf16_runs_the_forward_passes_in_bfloat16_and_keeps_float32_weights():
    cfg = make_config(*QUIET, "trainer.epochs=3", "trainer.precision=bf16")
    data = build_data(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg, data.spec)
    seen = set()
    model.net[0].register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    objective = build_objective(cfg.loss.name, "auto", data.spec, cfg.reg, cfg.model.name)
    trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, torch.device("cpu"))
    result = trainer.fit(model, data, objective)
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert result.last["val_acc"] > 0.8  # float32 reaches 0.88 after these 3 epochs


def test_bf16_learns_what_float32_learns(tmp_path):
    common = [*QUIET, "trainer.epochs=5"]
    full = train_in_process(tmp_path / "32", *common)
    half = train_in_process(tmp_path / "bf16", *common, "trainer.precision=bf16")
    assert half["precision"] == "bf16"
    assert half["test_loss"] == pytest.approx(full["test_loss"], abs=0.05)
    assert half["test_acc"] == pytest.approx(full["test_acc"], abs=0.03)


def test_float16_on_a_cpu_is_refused_with_the_alternatives(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.precision=16-mixed .* CUDA .*precision=bf16"):
        train_in_process(tmp_path, *QUIET, "trainer.precision=16-mixed", "trainer.device=cpu")


@pytest.mark.parametrize("model", ["perceptron", "rbm"])
def test_mixed_precision_is_refused_for_models_with_a_rule_of_their_own(tmp_path, model):
    with pytest.raises(ConfigError, match=f"model={model} learns .* trainer.precision=32"):
        train_in_process(tmp_path, *QUIET, f"model={model}", "trainer.precision=bf16")


def test_an_unknown_precision_lists_the_choices():
    with pytest.raises(ConfigError, match="trainer.precision='fp16' .* 32, bf16, 16-mixed"):
        make_config("trainer.precision=fp16")


@pytest.mark.slow  # compiling takes about 40 s on a 2-core CPU
def test_a_compiled_model_trains_as_the_eager_one(tmp_path):
    common = [*QUIET, "trainer.epochs=2"]
    eager = train_in_process(tmp_path / "eager", *common)
    compiled = train_in_process(tmp_path / "compiled", *common, "trainer.compile=true")
    assert compiled["compiled"] is True
    assert compiled["test_loss"] == pytest.approx(eager["test_loss"], rel=1e-4)
    # the checkpoint keeps the plain parameter names, loadable into an eager model
    best = torch.load(tmp_path / "compiled" / "checkpoints" / "best.pt", weights_only=True)
    assert not any(key.startswith("_orig_mod") for key in best["model"])


def test_threads_auto_gives_stacked_members_the_free_cores_from_a_smaller_size():
    """16 digits MLPs stacked (275k parameters together) take the cores no other process is
    busy on; one model of that size takes one thread. Every core is torch's own count, even
    after a run of this process lowered it to one."""
    cpu, keep = torch.device("cpu"), torch.get_num_threads()
    try:
        assert set_threads("auto", 275_000, cpu) == 1
        assert torch.get_num_threads() == 1
        stacked = set_threads("auto", 275_000, cpu, stacked=True)
        assert 1 <= stacked <= min(ALL_THREADS, allowed_cores())
        assert torch.get_num_threads() == stacked
        assert set_threads("auto", 100_000, cpu, stacked=True) == 1
        assert 1 <= set_threads("auto", SMALL_MODEL_PARAMS, cpu) <= ALL_THREADS
        assert set_threads(2, 10, cpu) == 2
    finally:
        torch.set_num_threads(keep)


def test_threads_auto_leaves_the_cores_other_processes_keep_busy():
    """With a busy process on every core this process may use, a large model gets one thread:
    more would wait for the cores those processes hold."""
    cpu, keep = torch.device("cpu"), torch.get_num_threads()
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(allowed_cores())
    ]
    try:
        time.sleep(0.5)  # every one of them started and spinning
        assert busy_elsewhere() >= len(busy)
        assert set_threads("auto", SMALL_MODEL_PARAMS, cpu) == 1
    finally:
        for process in busy:
            process.kill()
            process.wait()
        torch.set_num_threads(keep)


def test_the_benchmark_times_every_contender_and_writes_json(tmp_path):
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "perceptron_and", "--rounds", "1", "--no-startup"]
        + ["--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "perceptron_and" in done.stdout and "torch" in done.stdout
    result = json.loads(report.read_text())["results"][0]
    contenders = result["contenders"]
    assert {"dlbasics", "dlbasics, no logging", "hand loop", "sklearn Perceptron"} <= set(
        contenders
    )
    assert contenders["hand loop"]["ratio"] == 1.0
    assert all(t["median"] > 0 for t in contenders.values())
    assert result["device"] == "cpu"
    assert result["steps_per_epoch"] == 4  # the AND gate's 4 samples, one per step
    assert contenders["dlbasics"]["steps_per_second"] == pytest.approx(
        4 / contenders["dlbasics"]["median"]
    )


def load_bench():
    """scripts/bench.py as a module, to call its parts."""
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_mnist_sized_data_are_60000_learnable_images_of_28_by_28():
    data = load_bench().mnist_sized()
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_train.dtype == torch.float32
    assert len(data.x_val) == len(data.x_test) == 10000
    assert set(data.y_train.unique().tolist()) == set(range(10))
    # The nearest class mean of the training images labels the validation images: the
    # classes are there to be learned, not noise.
    means = torch.stack([data.x_train[data.y_train == c].mean(0) for c in range(10)])
    nearest = torch.cdist(data.x_val.flatten(1), means.flatten(1)).argmin(1)
    assert (nearest == data.y_val).float().mean() > 0.95


def test_the_stopwatch_notes_the_first_epoch_at_the_target_accuracy():
    stopwatch = load_bench().Stopwatch(target=0.98)
    for epoch, accuracy in enumerate([0.5, 0.97, 0.98, 0.99, 0.95], start=1):
        stopwatch.log_scalars({"acc/val": accuracy, "loss/val": 0.1}, epoch)
        if epoch == 3:
            seconds = stopwatch.reached["seconds"]
    assert stopwatch.reached == {"epoch": 3, "seconds": seconds}
    assert seconds > 0


def test_time_to_accuracy_fits_the_cnn_and_says_when_a_target_is_not_reached():
    bench = load_bench()
    cpu = torch.device("cpu")
    reached = bench.time_to_accuracy(cpu, target=0.8, fits=1, epochs=3)
    assert reached["epochs"] in (1, 2, 3) and reached["seconds"] > 0
    missed = bench.time_to_accuracy(cpu, target=1.01, fits=1, epochs=1)
    assert missed["fits"] == [None] and missed["seconds"] is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_the_benchmark_on_cuda_without_a_gpu_says_so():
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "--device", "cuda", "--no-startup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--device cuda: torch sees no CUDA device" in done.stderr


def operations(run) -> Counter[str]:
    """The tensor operations (ATen calls, backward ones included) that ``run()`` dispatches,
    by name, as torch's profiler records them."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        run()
    return Counter({event.key: event.count for event in profiler.key_averages()})


def per_step(*overrides: str) -> tuple[float, Counter[str]]:
    """Operations per training step of the Trainer, by name and in all: the difference between
    two one-epoch fits whose batch sizes differ, divided by the difference in steps."""
    counted = {}
    for batch_size in (64, 32):
        overrides_here = (*overrides, "trainer.epochs=1", f"trainer.batch_size={batch_size}")
        fits = []
        counts = operations(lambda: fits.append(fitted(*overrides_here)[2]))  # noqa: B023
        counted[batch_size] = (counts, fits[0].steps)
    (few, few_steps), (many, many_steps) = counted[64], counted[32]
    steps = many_steps - few_steps
    per_step = {name: count / steps for name, count in (many - few).items()}
    return sum(v for name, v in per_step.items() if name.startswith("aten::")), per_step


def hand_written_step(*overrides: str) -> Counter[str]:
    """Operations of one step of a hand-written loop over pre-loaded tensors with the same
    model and optimizer, measuring what the Trainer measures (loss and correct count)."""
    cfg = make_config(*QUIET, *overrides)
    data = build_data(cfg.data)
    model = build_model(cfg, data.spec)
    optimizer = build_optimizer(model.parameters(), cfg.optim, torch.device("cpu"))
    x, y, order = data.x_train, data.y_train, torch.randperm(len(data.x_train))
    loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)

    def step() -> None:
        index = order[:64]
        xb, yb = x[index], y[index]
        optimizer.zero_grad(set_to_none=True)
        scores = model(xb)
        loss = F.cross_entropy(scores, yb)
        loss.backward()
        optimizer.step()
        loss_sum.add_(loss.detach() * len(xb))
        correct.add_((scores.detach().argmax(1) == yb).sum())

    step()  # the optimizer makes its state on the first step
    return operations(step)


@pytest.mark.parametrize("model", ["mlp", "cnn", "rnn"])
def test_a_trainer_step_runs_no_more_operations_than_a_hand_written_one(model):
    # Wall-clock time is too noisy to assert on a shared machine; operations can be counted.
    overrides = [f"model={model}"] + (["data=seq_digits"] if model == "rnn" else [])
    per_step_operations, by_name = per_step(*overrides)
    hand = hand_written_step(*overrides)
    assert per_step_operations <= sum(n for name, n in hand.items() if name.startswith("aten::"))
    # No .item() per step beyond what torch.optim's step does itself: reads are per epoch.
    assert by_name.get("aten::item", 0) <= hand["aten::item"]


# --- CUDA --------------------------------------------------------------------------------------


@CUDA
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_training_on_cuda_matches_training_on_the_cpu(tmp_path, model):
    # The shuffled order is drawn on the CPU, so both take the same batches. TensorFloat-32
    # convolutions (cuDNN's default) would round more than float32 does.
    common = [*QUIET, f"model={model}", "trainer.epochs=3"]
    cpu = train_in_process(tmp_path / "cpu", *common, "trainer.device=cpu")
    torch.backends.cudnn.allow_tf32 = False
    try:
        gpu = train_in_process(tmp_path / "cuda", *common, "trainer.device=cuda")
    finally:
        torch.backends.cudnn.allow_tf32 = True
    assert gpu["device"].startswith("cuda")
    assert gpu["test_loss"] == pytest.approx(cpu["test_loss"], rel=1e-3)
    assert gpu["val_loss"] == pytest.approx(cpu["val_loss"], rel=1e-3)


@CUDA
def test_device_auto_trains_on_cuda(tmp_path):
    metrics = train_in_process(tmp_path, *QUIET, "trainer.epochs=1")
    assert metrics["device"].startswith("cuda")


def count_syncs(*overrides: str) -> int:
    """Host-device synchronisations during a fit on CUDA."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fitted(*overrides, device="cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@CUDA
@pytest.mark.parametrize("precision", ["32", "16-mixed"])
def test_nothing_waits_for_the_gpu_per_step(precision):
    # Twice the steps per epoch, the same syncs: they happen per epoch (metrics), not per step.
    common = ["trainer.epochs=2", f"trainer.precision={precision}"]
    per_epoch = count_syncs(*common, "trainer.batch_size=64")
    assert per_epoch > 0  # the per-epoch reads are seen
    assert count_syncs(*common, "trainer.batch_size=32") == per_epoch


@CUDA
def test_float16_with_a_gradient_scaler_learns_on_cuda(tmp_path):
    metrics = train_in_process(tmp_path, *QUIET, "trainer.epochs=5", "trainer.precision=16-mixed")
    assert metrics["test_acc"] > 0.85
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert last["grad_scaler"]["scale"] > 0


@CUDA
def test_the_benchmark_times_cuda_in_each_precision_and_compiled(tmp_path):
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "mlp_digits", "--device", "cuda", "--rounds", "1"]
        + ["--no-startup", "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(report.read_text())["results"][0]
    assert result["device"] == "cuda" and result["cuda_peak_mib"] > 0
    assert {
        "dlbasics",
        "dlbasics, precision=bf16",
        "dlbasics, precision=16-mixed",
        "dlbasics, compile=true",
        "hand loop",
    } <= set(result["contenders"])


@CUDA
def test_a_cnn_on_cuda_lets_cudnn_pick_its_algorithms(tmp_path):
    torch.backends.cudnn.benchmark = False
    train_in_process(tmp_path, *QUIET, "model=cnn", "trainer.epochs=1")
    assert torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
