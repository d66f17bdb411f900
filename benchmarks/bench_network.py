"""Benchmark of the translation network against MONAI's HighResNet, in one run.

Measures, on the CPU (and on CUDA when present):

1. training throughput (slices/s): Adam + L2, batch 5 of 112 x 96 single-channel windows, for our
   20-convolution dilated ResNet (widths 16/32/64) and MONAI's ``HighResNet(spatial_dims=2)`` with the
   same settings, each in contiguous and channels-last memory format; on CUDA also with mixed precision
   (bf16 where supported, else fp16) for both;
2. whole-volume inference of a 200 x 200 x 109 head volume (seconds), the full slices and the head
   crop that ``robustdeep predict`` uses by default.

Ratios are taken within this run (shared machines are noisy). MONAI is the ``bench`` extra; without it
the MONAI rows are skipped. Usage::

    python benchmarks/bench_network.py [--threads 2] [--repeats 5] [--steps 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from RobustDeepLogic.network.inference import autocast_dtype, predict_array
from RobustDeepLogic.network.model import build_network, count_parameters


def _monai(in_channels: int = 1):
    try:
        from monai.networks.nets import HighResNet
    except ImportError:
        return None
    return HighResNet(spatial_dims=2, in_channels=in_channels, out_channels=1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(make_model: Callable[[], torch.nn.Module], device: torch.device, *,
                     channels_last: bool, amp: bool, steps: int, repeats: int, batch: int = 5,
                     window=(112, 96)) -> List[float]:
    """Slices per second of Adam + L2 training steps, one figure per repeat."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = make_model().to(device, memory_format=fmt).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    dtype = autocast_dtype(device, "auto") if amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    x = torch.rand(batch, 1, *window, device=device).contiguous(memory_format=fmt)
    y = (2 * x).contiguous(memory_format=fmt)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(x)
        loss = F.mse_loss(out.float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(3):
        step()
    _sync(device)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        rates.append(batch * steps / (time.perf_counter() - t0))
    return rates


def head_volume(shape=(109, 200, 200), seed: int = 0) -> np.ndarray:
    """A scaled ``[z, y, x]`` volume with an ellipsoidal head of smooth texture (PET-like)."""
    from scipy import ndimage

    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    head = (z / 0.85) ** 2 + (y / 0.55) ** 2 + (x / 0.45) ** 2 <= 1
    tex = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape, dtype=np.float32), 2)
    return (head * (0.2 + tex)).astype(np.float32)


def inference_seconds(device: torch.device, *, crop: bool, batch: int, repeats: int,
                      amp: bool) -> List[float]:
    """Seconds to predict the whole 200 x 200 x 109 volume (scaled in, scaled out)."""
    from RobustDeepLogic.io.headmask import head_mask

    torch.manual_seed(0)
    net = build_network().to(device, memory_format=torch.channels_last).eval()
    vol = head_volume()
    times = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        head = head_mask([vol]) if crop else None  # what robustdeep predict does (predict_image)
        predict_array(net, vol[None], batch_size=batch, device=device, amp="auto" if amp else "off",
                      head=head)
        _sync(device)
        if r > 0:  # the first pass warms up
            times.append(time.perf_counter() - t0)
    return times


def _fmt(values: List[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="training steps per repeat")
    ap.add_argument("--cuda-steps", type=int, default=50)
    ap.add_argument("--no-inference", action="store_true")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: Dict[str, Dict] = {"torch": torch.__version__, "threads": args.threads, "train": {},
                                "inference": {}}
    ours = lambda: build_network()  # noqa: E731
    monai_net = _monai()
    print(f"torch {torch.__version__}, {args.threads} CPU threads; ours: "
          f"{count_parameters(build_network()):,} parameters"
          + (f"; MONAI HighResNet: {count_parameters(monai_net):,}" if monai_net is not None
             else "; MONAI not installed: its rows are skipped"))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        settings = [(False, False), (True, False)] + ([(True, True)] if device.type == "cuda" else [])
        steps = args.steps if device.type == "cpu" else args.cuda_steps
        print(f"\n## training, {device.type}: batch 5 of 112x96, slices/s (min / median of {args.repeats})")
        print("| memory format | AMP | ours | MONAI HighResNet | ratio (medians) |")
        print("|---|---|---|---|---|")
        for cl, amp in settings:
            row = {}
            r_ours = train_throughput(ours, device, channels_last=cl, amp=amp, steps=steps,
                                      repeats=args.repeats)
            row["ours"] = r_ours
            line = f"| {'channels_last' if cl else 'contiguous'} | {'on' if amp else 'off'} | {_fmt(r_ours)} |"
            if monai_net is not None:
                r_monai = train_throughput(_monai, device, channels_last=cl, amp=amp, steps=steps,
                                           repeats=args.repeats)
                row["monai"] = r_monai
                ratio = statistics.median(r_ours) / statistics.median(r_monai)
                row["ratio"] = ratio
                line += f" {_fmt(r_monai)} | {ratio:.2f}x |"
            else:
                line += " - | - |"
            print(line, flush=True)
            results["train"][f"{device.type}/{'cl' if cl else 'contig'}/{'amp' if amp else 'fp32'}"] = row
        if not args.no_inference:
            print(f"\n## inference, {device.type}: 200x200x109 volume, seconds (min / median)")
            print("| region | batch | seconds |")
            print("|---|---|---|")
            for crop in (False, True):
                for batch in ((1, 4) if device.type == "cpu" else (16,)):
                    t = inference_seconds(device, crop=crop, batch=batch, repeats=max(2, args.repeats // 2),
                                          amp=device.type == "cuda")
                    results["inference"][f"{device.type}/{'head' if crop else 'full'}/b{batch}"] = t
                    print(f"| {'head crop' if crop else 'full slices'} | {batch} | {_fmt(t)} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
