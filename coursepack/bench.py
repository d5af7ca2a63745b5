"""Time a naive PyTorch training loop against an idiomatic one: same data, same model, same work.

    python -m coursepack.bench [--device auto|cpu|cuda|mps] [--samples N] [--epochs E] [--batch-size B]
                               [--repeats R] [--channels-last] [--json PATH]

naive: a per-sample `Dataset` (one Python call and one numpy-to-tensor copy per image) batched by a
       `DataLoader` with the default collate, the model and every batch moved to the device at each
       step, and `loss.item()` (a host-device sync) at every step.
good:  the whole data set as tensors on the device once, batches cut from a `torch.randperm` on
       the device, the loss summed on the device and read once per epoch, fused Adam, and
       autocast on CUDA as in the notebooks (coursepack/snippets/amp.py: bfloat16 where the GPU has it
       natively, else float16 with a GradScaler); optionally channels_last.
Both train the demos' convnet from the same initial weights with Adam for the same number of
samples and epochs; a few warm-up steps are run first and are not timed, and the two loops are
timed in turn, `--repeats` times, keeping the fastest run of each.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from coursepack.snippets import amp, mnist

WARMUP_STEPS = 3


def make_convnet() -> nn.Module:
    """The convnet of notebooks/convnet.ipynb: two conv blocks with batch norm, then dropout and two linears."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, 10),
    )


class PerSampleDataset(Dataset):
    """What a first Dataset often looks like: numpy arrays, one image converted per call."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images.numpy(), labels.numpy()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return torch.tensor(self.images[i]), int(self.labels[i])


def naive_epoch(model, images, labels, device, batch_size) -> Callable[[int | None], float]:
    loader = DataLoader(PerSampleDataset(images, labels), batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch(max_steps: int | None = None) -> float:
        model.train()
        losses = []
        for step, (x, y) in enumerate(loader):
            if step == max_steps:
                break
            model.to(device)
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())  # waits for the device at every step
        return sum(losses) / len(losses)

    return epoch


def good_epoch(model, images, labels, device, batch_size, channels_last) -> Callable[[int | None], float]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=fmt)
    images, labels = images.to(device).contiguous(memory_format=fmt), labels.to(device)
    cuda = device.type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=cuda)  # fused: no sync in the scaler
    dtype = amp.autocast_dtype(device)  # bfloat16, float16 or None (no autocast), as in the notebooks
    scaler = amp.grad_scaler(dtype)

    def epoch(max_steps: int | None = None) -> float:
        model.train()
        order = torch.randperm(len(labels), device=device)
        total, seen = torch.zeros((), device=device), 0
        for step, start in enumerate(range(0, len(labels), batch_size)):
            if step == max_steps:
                break
            index = order[start : start + batch_size]
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += loss.detach() * len(index)
            seen += len(index)
        return total.item() / seen  # the one sync of the epoch

    return epoch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_epochs(epoch: Callable[[int | None], float], device, epochs: int) -> tuple[float, float]:
    """Seconds for `epochs` full epochs (the device drained before and after) and the last epoch's loss."""
    synchronize(device)
    start = time.perf_counter()
    loss = [epoch(None) for _ in range(epochs)][-1]
    synchronize(device)
    return time.perf_counter() - start, loss


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name != "cpu" and not (torch.cuda if name == "cuda" else torch.backends.mps).is_available():
        raise SystemExit(f"--device {name}: this PyTorch sees no {name.upper()} device")
    return torch.device(name)


def run(device: torch.device, samples: int, epochs: int, batch_size: int, channels_last: bool, repeats: int) -> dict:
    data = mnist.load_digits()
    if samples > len(data.train_labels):
        raise SystemExit(f"--samples {samples}: {data.name} has only {len(data.train_labels)} training images")
    images, labels = data.train_images[:samples], data.train_labels[:samples]
    results = {"device": str(device), "data": data.name, "samples": samples, "epochs": epochs,
               "batch_size": batch_size, "channels_last": channels_last, "repeats": repeats, "torch": torch.__version__,
               "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{device.type}, {torch.get_num_threads()} threads",
               "autocast": str(amp.autocast_dtype(device) or "off (float32)").removeprefix("torch.")}
    loops = {}
    for name, make_epoch, extra in [("naive", naive_epoch, ()), ("good", good_epoch, (channels_last,))]:
        torch.manual_seed(0)  # same initial weights and dropout stream for both loops
        loops[name] = make_epoch(make_convnet(), images, labels, device, batch_size, *extra)
        loops[name](WARMUP_STEPS)  # warm-up, not timed: allocations, kernel selection, DataLoader start
    for _ in range(repeats):  # interleaved, best of `repeats`: robust to other work on the machine
        for name, epoch in loops.items():
            seconds, loss = time_epochs(epoch, device, epochs)
            if seconds < results.get(name, {}).get("seconds", float("inf")):
                results[name] = {"seconds": seconds, "samples_per_s": samples * epochs / seconds}
            results[name]["final_epoch_loss"] = loss
    results["speedup"] = results["good"]["samples_per_s"] / results["naive"]["samples_per_s"]
    results["command"] = (f"python -m coursepack.bench --device {device.type} --samples {samples} "
                          f"--epochs {epochs} --batch-size {batch_size} --repeats {repeats}"
                          + (" --channels-last" if channels_last else ""))
    return results


def report(r: dict) -> str:
    rows = [f"{'loop':<44}{'samples/s':>11}{'seconds':>9}{'train loss':>12}"]
    for name, label in [("naive", "naive: per-sample Dataset, .item() per step"),
                        ("good", "good: tensors on device, one sync per epoch")]:
        t = r[name]
        rows.append(f"{label:<44}{t['samples_per_s']:>11,.0f}{t['seconds']:>9.2f}{t['final_epoch_loss']:>12.3f}")
    note = ["note: on a CPU the model's arithmetic dominates both loops, so expect them to be close (other work",
            "      on the machine adds noise); the gap opens on a GPU, which the naive loop leaves idle while",
            "      Python builds each batch image by image and waits at every .item()"]
    return "\n".join([
        f"device: {r['device']} ({r['device_name']}), torch {r['torch']}, good loop's autocast: {r['autocast']}",
        f"data:   {r['data']}, {r['samples']:,} samples x {r['epochs']} epoch(s), batch {r['batch_size']}, "
        f"best of {r['repeats']} interleaved runs",
        *rows,
        f"good / naive throughput: {r['speedup']:.2f}x",
        f"reproduce: {r['command']}",
        *(note if r["device"] == "cpu" else []),
    ])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    parser.add_argument("--samples", type=int, default=1024, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per loop (after warm-up)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per loop, interleaved; best kept")
    parser.add_argument("--channels-last", action="store_true", help="good loop: NHWC memory format")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(pick_device(args.device), args.samples, args.epochs, args.batch_size, args.channels_last,
                  args.repeats)
    print(report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
