"""Everything a first GPU run should check, in one script (under 10 minutes on one GPU).

    python benchmarks/gpu_check.py [--markdown gpu_check.md]
    python benchmarks/gpu_check.py --device cpu --quick      # the same code on tiny settings

1. **Every config** under ``configs/`` (found by globbing, ``--configs``) runs ``train.py fit`` with
   ``--trainer.fast_dev_run true`` on the device: one training and one validation batch, the
   callbacks' figures.
2. **Cached sampling on the device against the CPU reference**, for every config model whose
   ``sample`` has a ``cached`` switch, with the same (random-initialisation) weights: (a) the
   teacher-forced incremental network on the device equals the full forward pass of a float64 CPU
   copy (largest |difference| of the outputs, for models with a masked-conv ``net.layers``);
   (b) the cached and the naive sampler draw the same pixels from the same device generator
   (fraction equal); (c) samples drawn on the device and on the CPU come from one distribution:
   the float64 CPU model's mean NLL of each set agree (z-score of the difference).
3. **Training throughput** of the handout-sized PixelCNN-MADE (``configs/hw1/pixelcnn_made.yaml``,
   batch 128) in fp32 (TF32 off), TF32 and ``bf16-mixed``, with the projected time of the
   handout's 50 epochs on 60,000 training images (plus 10,000 evaluated per epoch).
4. **100 cached samples** of the same model: seconds.

Prints one table (``--markdown FILE`` also writes it); exits 1 if a check failed. Without CUDA
(and without ``--device cpu``) it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import glob
import inspect
import io
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HANDOUT_CONFIG = "configs/hw1/pixelcnn_made.yaml"
HANDOUT_EPOCHS, HANDOUT_TRAIN, HANDOUT_TEST = 50, 60_000, 10_000
#: Pass marks: largest |output difference| of a float32 device network against float64 (TF32 off),
#: fraction of pixels the cached and the naive sampler draw alike, |z| of the mean-NLL difference.
MAX_OUTPUT_DIFFERENCE = 1e-3
MIN_SAME_PIXELS = 0.999
MAX_Z = 4.0
#: Tiny model sizes for --quick (only the arguments a model has are used).
QUICK_SIZES = {
    "n_filters": 8,
    "n_layers": 1,
    "feature_dim": 8,
    "made_hidden_sizes": [8],
    "pixel_filters": 8,
    "receptive_radius": 2,  # the PixelVAE decoder: a 3×3 first kernel and one gated layer
    "prior_filters": 4,
}


@dataclass
class Row:
    part: str
    subject: str
    result: str
    ok: bool = True
    seconds: float = 0.0


def configs(pattern: str) -> list[str]:
    found = sorted(glob.glob(str(REPO / pattern), recursive=True))
    return [str(Path(path).relative_to(REPO)) for path in found]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def precision(setting: str) -> Iterator[None]:
    """fp32: TF32 off for matmuls and cuDNN convolutions; tf32: both on."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    cudnn = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = setting == "tf32"
    torch.backends.cudnn.allow_tf32 = setting == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


# ---------------------------------------------------------------------- 1. configs
def run_config(config: str, device: torch.device, root: Path) -> Row:
    import train

    args = [
        "fit",
        f"--config={config}",
        "--trainer.fast_dev_run=true",
        f"--trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
        "--trainer.devices=1",
        f"--trainer.default_root_dir={root / Path(config).stem}",
        "--trainer.enable_progress_bar=false",
    ]
    output = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            train.main(args)
        return Row("1 fast_dev_run", config, "ran", True, time.perf_counter() - start)
    except BaseException as error:  # SystemExit from a user error, or any failure
        if isinstance(error, KeyboardInterrupt):
            raise
        last = "".join(traceback.format_exception_only(type(error), error)).strip()
        detail = (output.getvalue().strip().splitlines() or [""])[-1]
        message = f"FAILED: {last}" + (f" ({detail})" if detail and detail not in last else "")
        return Row("1 fast_dev_run", config, message[:300], False, time.perf_counter() - start)


# ---------------------------------------------------------------------- 2. cached sampling
def config_model(config: str, quick: bool) -> torch.nn.Module:
    """The config's model with random initial weights (tiny sizes with ``quick``)."""
    import importlib

    import train

    spec = train.resolved_config(str(REPO / config))["model"]  # its base loaded, if it names one
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    init_args = dict(spec.get("init_args") or {})
    if quick:
        accepted = inspect.signature(cls.__init__).parameters
        init_args.update({k: v for k, v in QUICK_SIZES.items() if k in accepted})
    return cls(**init_args)


def has_cached_sampler(model: torch.nn.Module) -> bool:
    parameters = inspect.signature(model.sample).parameters
    return "cached" in parameters and "generator" in parameters


def incremental_difference(model: torch.nn.Module, reference: torch.nn.Module, n: int) -> float:
    """Largest |difference| between the device's teacher-forced incremental network (the cached
    sampler's arithmetic) and the float64 CPU forward pass, on random inputs."""
    from ar_models.gated_pixelcnn import GatedPixelCNN, GatedStepper
    from ar_models.sampling import IncrementalNet, step_through

    c, h, w = model.image_shape
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, model.n_categories, (n, c, h, w), generator=generator)
    if isinstance(model, GatedPixelCNN):
        x_in = model.one_hot(codes.to(model.device))
        labels = torch.arange(n) % model.n_classes if model.n_classes else None
        with torch.no_grad():
            stepper = GatedStepper(
                model.net, n, h, w, None if labels is None else labels.to(model.device)
            )
            stepped = step_through(stepper, x_in)
            full = reference.net(x_in.double().cpu(), labels)
        return float((stepped.double().cpu() - full).abs().max())
    layers = model.net.layers
    in_channels = layers[0].in_channels
    x_in = model.one_hot(codes.to(model.device)) if hasattr(model, "one_hot") else None
    if x_in is None or x_in.shape[1] != in_channels:
        x_in = torch.randn(n, in_channels, h, w, generator=generator).to(model.device)
    with torch.no_grad():
        stepped = step_through(IncrementalNet(layers, n, h, w), x_in).double().cpu()
        full = reference.net.layers(x_in.double().cpu())
    return float((stepped - full).abs().max())


def mean_nll(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of ``model.nll`` over ``x`` (float64 CPU model); a class-conditional
    model's samples drawn without labels have the classes in turn (``sample_labels``)."""
    n_classes = getattr(model, "n_classes", 0)
    labels = (torch.arange(len(x)) % n_classes,) if n_classes else ()
    with torch.no_grad():
        values = model.nll(x, *labels).double()
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


def check_sampler(config: str, device: torch.device, quick: bool) -> Row:
    start = time.perf_counter()
    torch.manual_seed(0)
    model = config_model(config, quick).eval()
    reference = copy.deepcopy(model).double().eval()  # float64 CPU copy, same weights
    model = model.to(device)
    n = 8 if quick else 32
    parts, ok = [], True
    with precision("fp32"), torch.no_grad():
        if hasattr(model, "net") and hasattr(model.net, "layers"):
            difference = incremental_difference(model, reference, 2 if quick else 4)
            ok &= difference <= MAX_OUTPUT_DIFFERENCE
            parts.append(f"cached step vs float64 forward: max abs difference {difference:.1e}")
        generator = torch.Generator(device=device)
        cached = model.sample(n, generator=generator.manual_seed(1), cached=True)
        naive = model.sample(n, generator=generator.manual_seed(1), cached=False)
        same = float((cached == naive).double().mean())
        ok &= same >= MIN_SAME_PIXELS
        parts.append(f"cached = naive on {100 * same:.2f}% of pixels")
        cpu_model = copy.deepcopy(model).cpu()
        on_cpu = cpu_model.sample(n, generator=torch.Generator().manual_seed(2), cached=True)
        (m_device, se_device), (m_cpu, se_cpu) = (
            mean_nll(reference, cached.cpu()),
            mean_nll(reference, on_cpu),
        )
        z = (m_device - m_cpu) / max(math.hypot(se_device, se_cpu), 1e-12)
        ok &= abs(z) <= MAX_Z
        parts.append(f"float64 NLL of {device.type} vs CPU samples: z = {z:+.2f}")
    name = f"{type(model).__name__} ({config})"
    seconds = time.perf_counter() - start
    return Row("2 cached sampling", name, "; ".join(parts), ok, seconds)


# ---------------------------------------------------------------------- 3. throughput
class StepTimer:
    """Seconds of every training step after ``warmup`` steps (a Lightning callback)."""

    def __new__(cls, warmup: int, device: torch.device) -> Any:
        import pytorch_lightning as pl

        class _Timer(pl.Callback):
            def __init__(self) -> None:
                self.times: list[float] = []
                self._start = 0.0

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                synchronize(device)
                self._start = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                synchronize(device)
                if trainer.global_step > warmup:
                    self.times.append(time.perf_counter() - self._start)

        return _Timer()


def handout_parts(quick: bool) -> tuple[Any, Any]:
    from datamodules import ColoredMNISTDataModule

    model = config_model(HANDOUT_CONFIG, quick)
    return model, ColoredMNISTDataModule(batch_size=8 if quick else 128)


def training_throughput(setting: str, device: torch.device, quick: bool) -> Row:
    import pytorch_lightning as pl

    warmup, steps = (1, 2) if quick else (5, 25)
    torch.manual_seed(0)
    model, data = handout_parts(quick)
    timer = StepTimer(warmup, device)
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if setting == "bf16-mixed" else "32-true",
        max_steps=warmup + steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    start = time.perf_counter()
    with precision("tf32" if setting == "tf32" else "fp32"):
        trainer.fit(model, datamodule=data)
        train_rate = data.batch_size / statistics.median(timer.times)
        eval_rate = evaluation_rate(trainer.lightning_module, data, device, setting, quick)
    hours = (HANDOUT_TRAIN / train_rate + HANDOUT_TEST / eval_rate) * HANDOUT_EPOCHS / 3600
    result = (
        f"{train_rate:,.0f} training images/s, {eval_rate:,.0f} evaluated images/s; "
        f"{HANDOUT_EPOCHS} epochs of {HANDOUT_TRAIN:,} + {HANDOUT_TEST:,}: {hours:.2f} h"
    )
    return Row("3 training", f"PixelCNN-MADE, {setting}", result, True, time.perf_counter() - start)


def evaluation_rate(
    model: Any, data: Any, device: torch.device, setting: str, quick: bool
) -> float:
    """Images per second of ``model.nll`` without gradients (validation and test)."""
    model = model.to(device).eval()
    batch = next(iter(data.test_dataloader()))
    x = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=setting == "bf16-mixed")
    times = []
    with torch.no_grad(), autocast:
        for _ in range(2 if quick else 6):
            synchronize(device)
            start = time.perf_counter()
            model.nll(x)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times[1:])


# ---------------------------------------------------------------------- 4. sampling time
def sampling_time(device: torch.device, quick: bool) -> Row:
    torch.manual_seed(0)
    model, _ = handout_parts(quick)
    model = model.to(device).eval()
    n = 10 if quick else 100
    with precision("fp32"):
        model.sample(2)  # warm-up (kernels, allocator)
        synchronize(device)
        _, seconds = timed(lambda: (model.sample(n), synchronize(device)))
    subject = f"{n} cached samples, PixelCNN-MADE, fp32"
    return Row("4 sampling", subject, f"{seconds:.2f} s", True, seconds)


# ---------------------------------------------------------------------- main
def table(rows: list[Row]) -> str:
    lines = ["| part | subject | result | ok | s |", "|---|---|---|---|---|"]
    for row in rows:
        ok = "yes" if row.ok else "**NO**"
        lines.append(f"| {row.part} | {row.subject} | {row.result} | {ok} | {row.seconds:.1f} |")
    return "\n".join(lines)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
    return f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny models and few steps")
    parser.add_argument("--configs", default="configs/**/*.yaml", help="glob, from the repo root")
    parser.add_argument(
        "--parts", default="1234", help="which parts to run, e.g. 23 (default: all)"
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check (run it on a machine with a GPU)")
        return 0
    device = torch.device(args.device)
    os.environ.setdefault("WANDB_MODE", "disabled")
    warnings.filterwarnings("ignore")
    print(f"gpu_check on {describe(device)}", flush=True)

    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        print(f"{row.part} | {row.subject} | {row.result} | {'ok' if row.ok else 'FAILED'}")

    found = configs(args.configs)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as root:
        if "1" in args.parts:
            for config in found:
                add(run_config(config, device, Path(root)))
    if "2" in args.parts:
        for config in found:
            if has_cached_sampler(config_model(config, quick=True)):
                add(safely("2 cached sampling", config, check_sampler, config, device, args.quick))
    if "3" in args.parts:
        for setting in ("fp32", "tf32", "bf16-mixed"):
            cuda_without_bf16 = device.type == "cuda" and not torch.cuda.is_bf16_supported()
            if setting == "bf16-mixed" and cuda_without_bf16:
                add(Row("3 training", f"PixelCNN-MADE, {setting}", "not supported here", True))
                continue
            add(safely("3 training", setting, training_throughput, setting, device, args.quick))
    if "4" in args.parts:
        add(safely("4 sampling", "PixelCNN-MADE", sampling_time, device, args.quick))

    text = f"gpu_check on {describe(device)}\n\n{table(rows)}"
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0 if all(row.ok for row in rows) else 1


def safely(part: str, subject: str, check: Callable[..., Row], *args: Any) -> Row:
    """``check(*args)``, or a failed row naming the exception."""
    start = time.perf_counter()
    try:
        return check(*args)
    except Exception as error:  # noqa: BLE001 (every failure is reported in the table)
        message = "".join(traceback.format_exception_only(type(error), error)).strip()
        return Row(part, subject, f"FAILED: {message[:300]}", False, time.perf_counter() - start)


if __name__ == "__main__":
    raise SystemExit(main())
