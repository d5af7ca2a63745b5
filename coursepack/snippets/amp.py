# Mixed precision: which 16-bit float autocast should use on this device, and whether it needs loss scaling.
import torch


def autocast_dtype(device, capability=None):
    """The dtype for `torch.autocast` on `device`, or None to stay in float32.

    bfloat16 on CUDA GPUs that compute in it natively (compute capability 8.0 or newer: A100, H100,
    RTX 30xx and later); float16 on older CUDA GPUs such as Colab's T4 (7.5). We do not ask
    `torch.cuda.is_bf16_supported()`: it also says yes where bfloat16 is only emulated, which is slow.
    None (float32) on the CPU and on Apple's MPS. `capability`, a (major, minor) pair, defaults to the GPU's.
    """
    if device.type != "cuda":
        return None
    major, minor = capability if capability is not None else torch.cuda.get_device_capability(device)
    return torch.bfloat16 if (major, minor) >= (8, 0) else torch.float16


def grad_scaler(dtype):
    """A GradScaler that is on only for float16, whose small gradients would underflow without it.

    bfloat16 has float32's exponent range and needs no scaling; switched off, the scaler passes the
    loss and the optimizer step through unchanged, so one training loop serves every device.
    """
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
