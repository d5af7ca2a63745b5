"""The shared mixed-precision snippet: bfloat16 only where the GPU computes in it natively, else float16 with
a GradScaler, nothing on the CPU or MPS. No GPU needed: capabilities are passed in or faked."""
import warnings

import pytest
import torch

from coursepack.snippets import amp

CUDA = torch.device("cuda")


@pytest.mark.parametrize(("capability", "want"), [
    ((6, 0), torch.float16),   # P100
    ((7, 0), torch.float16),   # V100
    ((7, 5), torch.float16),   # T4, Colab's GPU: bfloat16 there is emulated, although is_bf16_supported() says yes
    ((8, 0), torch.bfloat16),  # A100
    ((8, 6), torch.bfloat16),  # RTX 30xx
    ((8, 9), torch.bfloat16),  # L4, RTX 40xx
    ((9, 0), torch.bfloat16),  # H100, H200
    ((10, 0), torch.bfloat16),  # B200
])
def test_cuda_dtype_follows_the_compute_capability(capability, want):
    assert amp.autocast_dtype(CUDA, capability=capability) == want


@pytest.mark.parametrize("capability", [(7, 5), (8, 0)])
def test_the_capability_is_read_from_the_gpu_and_emulation_is_ignored(monkeypatch, capability):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)  # counts emulation
    want = torch.bfloat16 if capability >= (8, 0) else torch.float16
    assert amp.autocast_dtype(CUDA) == want
    assert asked == [CUDA]


@pytest.mark.parametrize("device", ["cpu", "mps", "meta"])
def test_no_autocast_off_cuda(monkeypatch, device):
    def no_gpu(*args, **kwargs):
        raise AssertionError("asked a GPU's capability for a non-CUDA device")

    monkeypatch.setattr(torch.cuda, "get_device_capability", no_gpu)
    assert amp.autocast_dtype(torch.device(device)) is None


@pytest.mark.parametrize(("dtype", "enabled"), [(torch.float16, True), (torch.bfloat16, False), (None, False)])
def test_the_scaler_is_on_for_float16_only(dtype, enabled):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = amp.grad_scaler(dtype)
    assert isinstance(scaler, torch.amp.GradScaler)
    if torch.cuda.is_available():
        assert scaler.is_enabled() == enabled
    else:  # without a GPU torch switches an enabled scaler off, and says so: only then is there a warning
        assert not scaler.is_enabled()
        assert any("CUDA is not available" in str(w.message) for w in caught) == enabled


def test_a_switched_off_scaler_passes_the_step_through():
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    scaler = amp.grad_scaler(None)
    loss = model(torch.ones(2, 3)).sum()
    assert scaler.scale(loss) is loss
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    torch.testing.assert_close(model.weight.detach(), before - 0.1 * 2 * torch.ones(1, 3))
