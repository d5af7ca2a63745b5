"""Wrong and right answers for 5_training_loop.ipynb (see ../mutation.py)."""
from mutation import Right, Wrong

NAMES = ["get_device", "sgd_step", "adam_step", "make_mlp", "make_convnet", "count_parameters",
         "train_one_epoch", "evaluate"]

CASES = [
    Wrong("the blank release: every answer raises NotImplementedError", fails={f"test_{name}" for name in NAMES},
          code="".join(f"def {name}(*args, **kwargs):\n    raise NotImplementedError()\n" for name in NAMES)),
    # get_device
    Wrong("decided once at import time", fails={"test_get_device"}, code="""
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
def get_device():
    return DEVICE
"""),
    Wrong("ignores Apple's MPS", fails={"test_get_device"}, code="""
def get_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
"""),
    Wrong("prefers MPS to CUDA", fails={"test_get_device"}, code="""
def get_device():
    if torch.backends.mps.is_available():
        return torch.device("mps")
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
"""),
    Wrong("returns a string, not a torch.device", fails={"test_get_device"}, code="""
def get_device():
    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
"""),
    Wrong("always the CPU", fails={"test_get_device"}, code="""
def get_device():
    return torch.device("cpu")
"""),
    Right("one expression, with an index and is_built", code="""
def get_device():
    mps = torch.backends.mps.is_built() and torch.backends.mps.is_available()
    return torch.device("cuda:0" if torch.cuda.is_available() else "mps" if mps else "cpu")
"""),
    # The tests replace what the real availability checks ask at call time, so names bound at import work.
    Right("binds the availability checks at import (from torch.cuda import is_available)", code="""
from torch.cuda import is_available as cuda_is_available
from torch.backends.mps import is_available as mps_is_available
def get_device():
    return torch.device("cuda" if cuda_is_available() else "mps" if mps_is_available() else "cpu")
"""),
    Right("counts CUDA devices", code="""
def get_device():
    if torch.cuda.device_count() > 0:
        return torch.device("cuda")
    return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
"""),
    Right("a helper that asks the modules each time", code="""
def _available(backend):
    return backend.is_available()
def get_device():
    for name, backend in (("cuda", torch.cuda), ("mps", torch.backends.mps)):
        if _available(backend):
            return torch.device(name)
    return torch.device("cpu")
"""),
    # current_accelerator() names the build's accelerator (cuda on a CUDA build without a GPU): ask
    # is_available() first.
    Right("torch.accelerator", code="""
def get_device():
    if torch.accelerator.is_available():
        accelerator = torch.accelerator.current_accelerator()
        if accelerator.type in ("cuda", "mps"):
            return torch.device(accelerator.type)
    return torch.device("cpu")
"""),
    # sgd_step
    Wrong("rebinds the name instead of updating in place", fails={"test_sgd_step"}, code="""
def sgd_step(params, lr):
    for p in params:
        if p.grad is not None:
            p = p.detach() - lr * p.grad
            p.grad = None
"""),
    Wrong("gradient ascent", fails={"test_sgd_step"}, code="""
def sgd_step(params, lr):
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p += lr * p.grad
                p.grad.zero_()
"""),
    Wrong("forgets to zero the gradients", fails={"test_sgd_step"}, code="""
def sgd_step(params, lr):
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= lr * p.grad
"""),
    Wrong("crashes on a parameter without a gradient", fails={"test_sgd_step"}, code="""
def sgd_step(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad.zero_()
"""),
    Wrong("zeroes the gradient before using it", fails={"test_sgd_step"}, code="""
def sgd_step(params, lr):
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.grad.zero_()
                p -= lr * p.grad
"""),
    Wrong("in-place update outside torch.no_grad()", fails={"test_sgd_step"}, code="""
def sgd_step(params, lr):
    for p in params:
        if p.grad is not None:
            p.sub_(lr * p.grad)
            p.grad.zero_()
"""),
    Right("the sheet's .data assignment, gradients set to None", code="""
def sgd_step(params, lr):
    for p in params:
        if p.grad is not None:
            p.data = p.data - lr * p.grad.data
            p.grad = None
"""),
    Right("foreach kernels", code="""
def sgd_step(params, lr):
    params = [p for p in params if p.grad is not None]
    grads = [p.grad for p in params]
    with torch.no_grad():
        torch._foreach_add_(params, grads, alpha=-lr)
    torch._foreach_zero_(grads)
"""),
    Right("copy_ of a float64 computation under @torch.no_grad()", code="""
@torch.no_grad()
def sgd_step(params, lr):
    for p in params:
        if p.grad is not None:
            p.copy_(p.double() - lr * p.grad.double())
            p.grad.zero_()
"""),
    # adam_step
    Wrong("no bias correction", fails={"test_adam_step"}, code="""
def adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    with torch.no_grad():
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            m, v = state.setdefault(i, (torch.zeros_like(p), torch.zeros_like(p)))
            m.mul_(betas[0]).add_(p.grad, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(p.grad, p.grad, value=1 - betas[1])
            p.sub_(lr * m / (v.sqrt() + eps))
"""),
    Wrong("moments re-initialised at every call", fails={"test_adam_step"}, code="""
def adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    state["step"] = t = state.get("step", 0) + 1
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            m = (1 - betas[0]) * p.grad
            v = (1 - betas[1]) * p.grad * p.grad
            p.sub_(lr * (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps))
"""),
    Wrong("eps inside the square root", fails={"test_adam_step"}, code="""
def adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    state["step"] = t = state.get("step", 0) + 1
    with torch.no_grad():
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            m, v = state.setdefault(i, (torch.zeros_like(p), torch.zeros_like(p)))
            m.mul_(betas[0]).add_(p.grad, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(p.grad, p.grad, value=1 - betas[1])
            p.sub_(lr * (m / (1 - betas[0] ** t)) / (v / (1 - betas[1] ** t) + eps).sqrt())
"""),
    Wrong("betas swapped", fails={"test_adam_step"}, code="""
def adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    beta2, beta1 = betas
    state["step"] = t = state.get("step", 0) + 1
    with torch.no_grad():
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            m, v = state.setdefault(i, (torch.zeros_like(p), torch.zeros_like(p)))
            m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            p.sub_(lr * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps))
"""),
    Wrong("step count incremented once per parameter", fails={"test_adam_step"}, code="""
def adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    with torch.no_grad():
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            state["step"] = t = state.get("step", 0) + 1
            m, v = state.setdefault(i, (torch.zeros_like(p), torch.zeros_like(p)))
            m.mul_(betas[0]).add_(p.grad, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(p.grad, p.grad, value=1 - betas[1])
            p.sub_(lr * (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps))
"""),
    Wrong("state in a global dictionary, not in `state`", fails={"test_adam_step"}, code="""
ADAM_STATE = {}
def adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    ADAM_STATE["step"] = t = ADAM_STATE.get("step", 0) + 1
    with torch.no_grad():
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            m, v = ADAM_STATE.setdefault(i, (torch.zeros_like(p), torch.zeros_like(p)))
            m.mul_(betas[0]).add_(p.grad, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(p.grad, p.grad, value=1 - betas[1])
            p.sub_(lr * (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps))
"""),
    Right("per-parameter state keyed by the tensor, as torch.optim does", code="""
@torch.no_grad()
def adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    for p in params:
        if p.grad is None:
            continue
        s = state.setdefault(p, {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
        s["step"] += 1
        s["m"] = betas[0] * s["m"] + (1 - betas[0]) * p.grad
        s["v"] = betas[1] * s["v"] + (1 - betas[1]) * p.grad ** 2
        m_hat = s["m"] / (1 - betas[0] ** s["step"])
        v_hat = s["v"] / (1 - betas[1] ** s["step"])
        p -= lr * m_hat / (torch.sqrt(v_hat) + eps)
"""),
    Right("the paper's efficient form with a corrected eps, zeroing the gradients", code="""
def adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    state["t"] = t = state.get("t", 0) + 1
    c1, c2 = 1 - betas[0] ** t, 1 - betas[1] ** t
    with torch.no_grad():
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            if ("m", i) not in state:
                state["m", i], state["v", i] = torch.zeros_like(p), torch.zeros_like(p)
            state["m", i].lerp_(p.grad, 1 - betas[0])
            state["v", i].mul_(betas[1]).add_((1 - betas[1]) * p.grad.square())
            p.addcdiv_(state["m", i], state["v", i].sqrt() + eps * c2 ** 0.5, value=-lr * c2 ** 0.5 / c1)
            p.grad = None
"""),
    Right("the first step written out: lr * g / (|g| + eps), then the general case", code="""
def adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    b1, b2 = betas
    t = state["t"] = state.get("t", 0) + 1
    with torch.no_grad():
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            g = p.grad
            if t == 1:
                state[i] = ((1 - b1) * g, (1 - b2) * g * g)
                p -= lr * g / (g.abs() + eps)
                continue
            m, v = state[i]
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            state[i] = (m, v)
            p -= lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
"""),
    # make_mlp
    Wrong("one shared model returned every time", fails={"test_make_mlp"}, code="""
MLP = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
def make_mlp():
    return MLP
"""),
    Wrong("a layer shared between models", fails={"test_make_mlp"}, code="""
HIDDEN = nn.Linear(784, 128)
def make_mlp():
    return nn.Sequential(nn.Flatten(), HIDDEN, nn.ReLU(), nn.Linear(128, 10))
"""),
    Wrong("no hidden layer", fails={"test_make_mlp"}, code="""
def make_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
"""),
    # Different Parameter objects on one storage: seen only by changing one model and watching the other.
    Wrong("a weight's storage shared between models", fails={"test_make_mlp"}, code="""
BASE = nn.Linear(784, 128)
def make_mlp():
    hidden = nn.Linear(784, 128)
    hidden.weight = nn.Parameter(BASE.weight.data)
    return nn.Sequential(nn.Flatten(), hidden, nn.ReLU(), nn.Linear(128, 10))
"""),
    Wrong("no non-linearity between the layers", fails={"test_make_mlp"}, code="""
def make_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.Linear(256, 128), nn.Linear(128, 10))
"""),
    Wrong("softmax at the end", fails={"test_make_mlp"}, code="""
def make_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(dim=1))
"""),
    Wrong("forgets to flatten", fails={"test_make_mlp"}, code="""
def make_mlp():
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
"""),
    Right("a custom module with GELU, dropout and a zero-initialised output layer", code="""
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 64)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(64, 10)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        return self.out(self.drop(F.gelu(self.hidden(x.flatten(1)))))

def make_mlp():
    return MLP()
"""),
    Right("log-softmax outputs (valid logits)", code="""
def make_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.Tanh(), nn.Linear(100, 10), nn.LogSoftmax(dim=1))
"""),
    # make_convnet
    Wrong("one shared model returned every time", fails={"test_make_convnet"}, code="""
CONVNET = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8 * 14 * 14, 10))
def make_convnet():
    return CONVNET
"""),
    Wrong("an MLP without convolutions", fails={"test_make_convnet"}, code="""
def make_convnet():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
"""),
    Wrong("all-convolutional but never flattened: (B, 10, 1, 1)", fails={"test_make_convnet"}, code="""
def make_convnet():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 10, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1))
"""),
    Wrong("miscounted size after pooling", fails={"test_make_convnet"}, code="""
def make_convnet():
    return nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
"""),
    Wrong("softmax at the end", fails={"test_make_convnet"}, code="""
def make_convnet():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 14 * 14, 10), nn.Softmax(dim=1))
"""),
    Right("all-convolutional with batch norm and global average pooling", code="""
def make_convnet():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 10, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
"""),
    Right("LeNet-5 with tanh and average pooling", code="""
class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.avg_pool2d(torch.tanh(self.c1(x)), 2)
        x = F.avg_pool2d(torch.tanh(self.c2(x)), 2)
        return self.f3(torch.tanh(self.f2(torch.tanh(self.f1(x.flatten(1))))))

def make_convnet():
    return LeNet()
"""),
    # count_parameters
    Wrong("counts tensors, not scalars", fails={"test_count_parameters"}, code="""
def count_parameters(model):
    return len([p for p in model.parameters() if p.requires_grad])
"""),
    Wrong("counts frozen parameters too", fails={"test_count_parameters"}, code="""
def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
"""),
    Wrong("counts the state dict (buffers and frozen parameters)", fails={"test_count_parameters"}, code="""
def count_parameters(model):
    return sum(t.numel() for t in model.state_dict().values())
"""),
    Wrong("counts a shared weight once per module", fails={"test_count_parameters"}, code="""
def count_parameters(model):
    return sum(p.numel() for m in model.modules() for p in m.parameters(recurse=False) if p.requires_grad)
"""),
    Right("math.prod of shapes over named_parameters", code="""
def count_parameters(model):
    return sum(math.prod(p.shape) for _, p in model.named_parameters() if p.requires_grad)
"""),
    Right("a 0-d integer tensor", code="""
def count_parameters(model):
    return torch.tensor([p.numel() for p in model.parameters() if p.requires_grad], dtype=torch.long).sum()
"""),
    # train_one_epoch
    Wrong("never steps the optimizer", fails={"test_train_one_epoch"}, code="""
def train_one_epoch(model, loader, optimizer, device):
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        total, count = total + loss.item() * len(y), count + len(y)
    return total / count
"""),
    Wrong("returns the sum of the batch losses", fails={"test_train_one_epoch"}, code="""
def train_one_epoch(model, loader, optimizer, device):
    model.train()
    total = 0.0
    for x, y in loader:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total
"""),
    Wrong("returns a tensor that still requires grad", fails={"test_train_one_epoch"}, code="""
def train_one_epoch(model, loader, optimizer, device):
    model.train()
    total, count = 0, 0
    for x, y in loader:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, count = total + loss * len(y), count + len(y)
    return total / count
"""),
    Wrong("never calls model.train()", fails={"test_train_one_epoch"}, code="""
def train_one_epoch(model, loader, optimizer, device):
    total, count = torch.zeros(()), 0
    for x, y in loader:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, count = total + loss.detach() * len(y), count + len(y)
    return (total / count).item()
"""),
    Wrong("forgets zero_grad: gradients accumulate", fails={"test_train_one_epoch"}, code="""
def train_one_epoch(model, loader, optimizer, device):
    model.train()
    total, count = torch.zeros(()), 0
    for x, y in loader:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
        total, count = total + loss.detach() * len(y), count + len(y)
    return (total / count).item()
"""),
    Wrong("negative log-likelihood of raw logits (no log-softmax)", fails={"test_train_one_epoch"}, code="""
def train_one_epoch(model, loader, optimizer, device):
    model.train()
    total, count = torch.zeros(()), 0
    for x, y in loader:
        loss = F.nll_loss(model(x.to(device)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, count = total + loss.detach() * len(y), count + len(y)
    return (total / count).item()
"""),
    Wrong("model.train() only after the first batch", fails={"test_train_one_epoch"}, code="""
def train_one_epoch(model, loader, optimizer, device):
    total, count = torch.zeros(()), 0
    for x, y in loader:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.train()
        total, count = total + loss.detach() * len(y), count + len(y)
    return (total / count).item()
"""),
    Wrong("zero_grad once, before the loop: gradients accumulate", fails={"test_train_one_epoch"}, code="""
def train_one_epoch(model, loader, optimizer, device):
    model.train()
    optimizer.zero_grad()
    total, count = torch.zeros(()), 0
    for x, y in loader:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
        total, count = total + loss.detach() * len(y), count + len(y)
    return (total / count).item()
"""),
    Wrong("one optimizer step per epoch, on the summed gradients", fails={"test_train_one_epoch"}, code="""
def train_one_epoch(model, loader, optimizer, device):
    model.train()
    optimizer.zero_grad()
    total, count = torch.zeros(()), 0
    for x, y in loader:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        loss.backward()
        total, count = total + loss.detach() * len(y), count + len(y)
    optimizer.step()
    return (total / count).item()
"""),
    Right("mixed precision through the course's helpers, a GradScaler and set_to_none", code="""
def train_one_epoch(model, loader, optimizer, device):
    model.train()
    dtype = autocast_dtype(device)
    scaler = grad_scaler(dtype)
    total, count = torch.zeros((), device=device), 0
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach() * len(labels)
        count += len(labels)
    return (total / count).item()
"""),
    Right("per-batch mean with .item() every step and nn.CrossEntropyLoss", code="""
def train_one_epoch(model, loader, optimizer, device):
    model.train()
    criterion, losses = nn.CrossEntropyLoss(), []
    for x, y in loader:
        optimizer.zero_grad(set_to_none=False)
        loss = criterion(model(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)
"""),
    Right("summed loss divided by the batch size, float()", code="""
def train_one_epoch(model, loader, optimizer, device):
    model.to(device).train()
    total, count = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y, reduction="sum") / len(y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss) * len(y)
        count += len(y)
    return total / count
"""),
    # evaluate
    Wrong("returns the number of correct predictions", fails={"test_evaluate"}, code="""
def evaluate(model, loader, device):
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
    return float(correct)
"""),
    Wrong("builds a graph", fails={"test_evaluate"}, code="""
def evaluate(model, loader, device):
    model.eval()
    correct, count = 0, 0
    for x, y in loader:
        correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
        count += len(y)
    return correct / count
"""),
    Wrong("never calls model.eval()", fails={"test_evaluate"}, code="""
def evaluate(model, loader, device):
    correct, count = 0, 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
            count += len(y)
    return correct / count
"""),
    Wrong("mean of per-batch accuracies", fails={"test_evaluate"}, code="""
def evaluate(model, loader, device):
    model.eval()
    accuracies = []
    with torch.no_grad():
        for x, y in loader:
            accuracies.append((model(x.to(device)).argmax(1) == y.to(device)).float().mean().item())
    return sum(accuracies) / len(accuracies)
"""),
    Wrong("only the first batch", fails={"test_evaluate"}, code="""
def evaluate(model, loader, device):
    model.eval()
    with torch.no_grad():
        x, y = next(iter(loader))
        return (model(x.to(device)).argmax(1) == y.to(device)).float().mean().item()
"""),
    Wrong("a percentage", fails={"test_evaluate"}, code="""
def evaluate(model, loader, device):
    model.eval()
    correct, count = 0, 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
            count += len(y)
    return 100 * correct / count
"""),
    Wrong("a 0-d tensor instead of a float", fails={"test_evaluate"}, code="""
def evaluate(model, loader, device):
    model.eval()
    correct, count = torch.zeros(()), 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum()
            count += len(y)
    return correct / count
"""),
    # A copy of the model in evaluation mode is allowed by the text: the mode probe must see the copy's forward passes.
    Wrong("a deep copy, but left in training mode", fails={"test_evaluate"}, code="""
import copy
def evaluate(model, loader, device):
    twin = copy.deepcopy(model)
    correct, count = 0, 0
    with torch.no_grad():
        for x, y in loader:
            correct += (twin(x.to(device)).argmax(1) == y.to(device)).sum().item()
            count += len(y)
    return correct / count
"""),
    Wrong("model.eval() after the first batch", fails={"test_evaluate"}, code="""
def evaluate(model, loader, device):
    correct, count = 0, 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
            count += len(y)
            model.eval()
    return correct / count
"""),
    Right("a deep copy in evaluation mode: the caller's model keeps its mode", code="""
import copy
def evaluate(model, loader, device):
    frozen = copy.deepcopy(model).eval()
    correct, count = 0, 0
    with torch.inference_mode():
        for x, y in loader:
            correct += (frozen(x.to(device)).argmax(1) == y.to(device)).sum().item()
            count += len(y)
    return correct / count
"""),
    Right("torch.no_grad, concatenated predictions, mode restored afterwards", code="""
def evaluate(model, loader, device):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        hits = torch.cat([model(x.to(device)).argmax(1) == y.to(device) for x, y in loader])
    model.train(was_training)
    return hits.float().mean().item()
"""),
    Right("Python counters under inference_mode", code="""
def evaluate(model, loader, device):
    model.eval()
    right = seen = 0
    with torch.inference_mode():
        for x, y in loader:
            predictions = model(x.to(device)).max(dim=1).indices
            right += int((predictions.cpu() == y).sum())
            seen += y.numel()
    return right / seen
"""),
]
