"""The network: layout, parameter count, shapes and channels per task, linear output, slice inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from RobustDeepLogic.network.model import DILATIONS, NetworkSpec, build_network, count_convolutions, count_parameters, receptive_field
from RobustDeepLogic.network.inference import autocast_dtype, predict_array
from RobustDeepLogic.cohort.tasks import BUILTIN_TASKS, load_tasks
from RobustDeepLogic.training.validation import head_metrics


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_paper_layout_and_parameter_count():
    net = build_network()
    assert count_convolutions(net) == 20
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [m.dilation[0] for m in convs] == list(DILATIONS) == [1] * 7 + [2] * 7 + [4] * 6
    assert all(m.kernel_size == (3, 3) for m in convs)
    assert len(net.blocks) == 9
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert count_parameters(net) == 240_993  # docs/baselines.md, widths 16/32/64
    assert [m.out_channels for m in convs[:19]] == [16] * 7 + [32] * 7 + [64] * 5
    assert receptive_field() == 91


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_shapes_and_channels_per_task(name):
    task = BUILTIN_TASKS[name]
    net = build_network(in_channels=len(task.inputs), widths=(4, 6, 8))
    x = torch.rand(2, len(task.inputs), 23, 17)  # odd sizes: fully convolutional
    assert net(x).shape == (2, 1, 23, 17)
    with pytest.raises(RuntimeError):
        net(torch.rand(2, len(task.inputs) + 1, 23, 17))


def test_user_task_declared_as_data():
    tasks = load_tasks({"pet2ct": {"inputs": ["fd", "nac"], "target": "ct"}})
    t = tasks["pet2ct"]
    assert t.inputs == ("FD", "NAC") and t.target == "CT"
    assert build_network(in_channels=len(t.inputs), widths=(4, 4, 4))(torch.rand(1, 2, 8, 8)).shape[1] == 1


def test_width_is_configurable_and_counted():
    small = build_network(widths=(4, 4, 4))
    assert count_parameters(small) < count_parameters(build_network(widths=(8, 8, 8)))
    spec = NetworkSpec(3, 1, (8, 16, 32))
    assert NetworkSpec.from_dict(spec.as_dict()) == spec


def test_output_is_linear_and_can_be_negative():
    net = build_network(widths=(4, 4, 4))
    with torch.no_grad():
        net.tail.bias.fill_(-3.0)
        for p in net.tail.weight, :
            p.zero_()
    out = net(torch.rand(1, 1, 12, 12))
    assert torch.allclose(out, torch.full_like(out, -3.0))


def test_residual_pairs_zero_pad_the_shortcut():
    net = build_network(widths=(2, 3, 5))
    block = net.blocks[3]  # width 2 -> 3 (first block of the dilation-2 group)
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
    x = torch.rand(1, 2, 9, 9)
    y = block(x)
    assert y.shape == (1, 3, 9, 9)
    assert torch.equal(y[:, :2], x) and torch.equal(y[:, 2], torch.zeros(1, 9, 9))


def test_channels_last_gives_the_same_result():
    torch.manual_seed(0)
    net = build_network(widths=(4, 8, 8))
    x = torch.rand(3, 1, 20, 16)
    a = net(x)
    b = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_predict_array_matches_the_network_slice_by_slice():
    torch.manual_seed(1)
    net = build_network(in_channels=2, widths=(4, 4, 4)).eval()
    vol = np.random.default_rng(0).random((2, 7, 20, 18)).astype(np.float32)
    out = predict_array(net, vol, batch_size=3, channels_last=False)
    with torch.no_grad():
        direct = net(torch.from_numpy(vol.transpose(1, 0, 2, 3).copy()))[:, 0].numpy()
    np.testing.assert_allclose(out, direct, rtol=1e-4, atol=1e-5)
    part = predict_array(net, vol, slices=[2, 4], box=(3, 15, 2, 12))
    assert np.all(part[[0, 1, 3, 5, 6]] == 0) and np.all(part[2, :3] == 0) and np.any(part[2, 5, 5] != 0)


def test_amp_is_off_on_cpu():
    assert autocast_dtype(torch.device("cpu"), "auto") is None
    assert autocast_dtype(torch.device("cpu"), "bf16") is None


def test_head_metrics_known_values():
    r = np.zeros((2, 4, 4), np.float32)
    r[:, 1:3, 1:3] = 0.5
    head = r > 0
    m = head_metrics(r, r, head)
    assert m["rmse"] == 0 and m["ssim"] == pytest.approx(1.0)
    p = r + 0.1 * head
    m = head_metrics(r, p, head)
    assert m["rmse"] == pytest.approx(0.1, rel=1e-5)
    assert m["psnr"] == pytest.approx(20 * np.log10(0.6 / 0.1), rel=1e-5)
    mr, mp = 0.5, 0.6
    assert m["ssim"] == pytest.approx((2 * mr * mp + 0.01) / (mr ** 2 + mp ** 2 + 0.01), rel=1e-5)


@pytest.mark.gpu
def test_cuda_mixed_precision_channels_last_step():
    dev = torch.device("cuda")
    net = build_network().to(dev, memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    x = torch.rand(5, 1, 112, 96, device=dev).contiguous(memory_format=torch.channels_last)
    dtype = autocast_dtype(dev, "auto")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        with torch.autocast("cuda", dtype=dtype):
            loss = torch.nn.functional.mse_loss(net(x).float(), 2 * x)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_head_crops_give_the_head_exactly_what_full_slices_give():
    from scipy import ndimage

    from RobustDeepLogic.network.model import RECEPTIVE_RADIUS
    from RobustDeepLogic.network.inference import predict_array

    assert RECEPTIVE_RADIUS == 45
    rng = np.random.default_rng(3)
    z, y, x = np.mgrid[:12, :140, :200]
    head = ((z - 6) / 6.5) ** 2 + ((y - 70) / 40) ** 2 + ((x - 62) / 30) ** 2 <= 1
    vol = (ndimage.gaussian_filter(rng.random(head.shape), 1) * head).astype(np.float32)[None]
    torch.manual_seed(0)
    net = build_network(in_channels=1, widths=[4, 4, 8])
    full = predict_array(net, vol, batch_size=3)
    cropped = predict_array(net, vol, batch_size=3, head=head)
    np.testing.assert_allclose(cropped[head], full[head], atol=1e-5)
    assert (cropped[~head.any(axis=(1, 2))] == 0).all()  # slices without head are not predicted
    assert (cropped[:, :, -2:] == 0).all()  # far outside every head box
    tight = predict_array(net, vol, batch_size=3, head=head, margin=5)  # too small a margin differs
    assert not np.allclose(tight[head], full[head], atol=1e-5)
