"""The bridge between the harness and a student's kernel (coursepack.grading.bridge), piece by piece.

Each test starts a real second process playing the kernel: it defines some "student" code and
serves one session, as `serve_kernel` does in a notebook's kernel; the test plays the harness.
"""
from __future__ import annotations

import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from coursepack.grading.bridge import (
    BridgeError,
    BridgeTimeout,
    Endpoint,
    HarnessPolicy,
    RemoteError,
    type_name,
)
from coursepack.grading.harness import accept_one, listening


class Kernel:
    """A process serving one bridge session with `code` as its user namespace."""

    def __init__(self, tmp_path, code: str, timeout: float = 60):
        path = str(tmp_path / "bridge.sock")
        program = textwrap.dedent(code) + "\nfrom coursepack.grading.bridge import serve_kernel\n" \
                                          f"serve_kernel({path!r}, globals())\n"
        self._listening = listening(path)
        server = self._listening.__enter__()
        self.process = subprocess.Popen([sys.executable, "-c", program])
        deadline = time.monotonic() + timeout
        self.endpoint = Endpoint(accept_one(server, deadline), HarnessPolicy(8 * 2**20), deadline=deadline)

    def __getitem__(self, name):
        return self.endpoint.request("global", name)

    def close(self):
        self.endpoint.close()
        self._listening.__exit__(None, None, None)
        self.process.wait(timeout=30)


@pytest.fixture
def kernel(tmp_path):
    started = []

    def start(code: str, **kwargs) -> Kernel:
        started.append(Kernel(tmp_path, code, **kwargs))
        return started[-1]

    yield start
    for k in started:
        k.close()


def test_plain_values_cross_as_copies(kernel):
    k = kernel("def echo(x):\n    return x\n")
    echo = k["echo"]
    for value in [None, True, 3, 2**70, -1.5, float("inf"), "text", b"\x00bytes", 1 + 2j, [1, [2]], (1, (2,)),
                  {"a": 1, (1, 2): [3]}, {1, 2}, frozenset({3}), slice(1, None, 2), range(2, 9, 3), Ellipsis,
                  torch.float64, torch.device("cpu"), torch.Size([2, 3])]:
        assert echo(value) == value and type(echo(value)) is type(value), value
    assert str(echo(float("nan"))) == "nan"


def test_tensors_keep_dtype_shape_values_and_identity(kernel):
    k = kernel("import torch\nkept = []\ndef keep(t):\n    kept.append(t)\n    return t\n"
               "def same(a, b):\n    return a is b\ndef column(a):\n    return a[:, 1]\n")
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.bool,
                  torch.complex64, torch.uint8):
        t = (torch.arange(6) % 3).to(dtype).reshape(2, 3)
        back = k["keep"](t)
        assert back is t and back.dtype == dtype  # a tensor of the harness's comes back as itself
    student = k["column"](torch.arange(12.0).reshape(4, 3))  # a strided view, made in the kernel
    assert torch.equal(student, torch.tensor([1.0, 4.0, 7.0, 10.0]))
    assert k["same"](student, student) is True  # the mirror goes back as the student's own tensor
    assert k["keep"](torch.zeros(4, 0)).shape == (4, 0)


def test_numpy_values_keep_their_shape(kernel):
    k = kernel("import numpy as np\ndef scalar():\n    return np.float64(2.5)\ndef zero_d():\n"
               "    return np.array(3.0)\ndef matrix():\n    return np.arange(6.0).reshape(2, 3).T\n")
    assert k["scalar"]().shape == () and float(k["scalar"]()) == 2.5
    assert k["zero_d"]().shape == ()
    assert k["matrix"]().tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]


def test_data_writes_on_temporaries_travel(kernel):
    k = kernel("import torch\nclass Net:\n    def __init__(self):\n        self.W = torch.ones(3)\n"
               "def total(net):\n    return float(net.W.sum())\n"
               "def zero_its_weights(model):\n    model.weight.data.zero_()\n")
    net = k["Net"]()
    net.W.data.zero_()  # on a temporary mirror, unseen by autograd's version counter
    assert k["total"](net) == 0.0
    model = torch.nn.Linear(2, 2)
    k["zero_its_weights"](model)
    assert float(model.weight.detach().abs().sum()) == 0.0


def test_in_place_updates_and_gradients_travel_both_ways(kernel):
    k = kernel("""
        import torch
        def sgd_step(params, lr):
            for p in params:
                if p.grad is not None:
                    p.data -= lr * p.grad.data  # not seen by autograd's version counter
                    p.grad = None
        def fill(state):
            state["step"] = state.get("step", 0) + 1
            state.setdefault("moments", []).append(torch.ones(2))
        class Net:
            def __init__(self):
                self.W = torch.zeros(2, 3, requires_grad=True)
            def forward(self, x):
                return self.W @ x
    """)
    params = [torch.ones(3, requires_grad=True)]
    params[0].grad = torch.full((3,), 2.0)
    k["sgd_step"](params, 0.5)
    assert torch.equal(params[0].detach(), torch.zeros(3)) and params[0].grad is None
    state = {}
    k["fill"](state)
    k["fill"](state)
    assert state["step"] == 2 and len(state["moments"]) == 2
    net = k["Net"]()
    with torch.no_grad():
        net.W.copy_(torch.arange(6.0).reshape(2, 3))  # the harness sets the student's weights
    x = torch.tensor([1.0, 0.0, -1.0])
    y = net.forward(x)
    assert torch.equal(y.detach(), torch.tensor([-2.0, -2.0])) and y.requires_grad
    (y * torch.tensor([1.0, 2.0])).sum().backward()  # runs the student's backward pass
    assert torch.equal(net.W.grad, torch.outer(torch.tensor([1.0, 2.0]), x))


FUNCTIONS = """
import torch
import torch.autograd.forward_ad as fwAD

def by_jvp(f, x):
    return torch.stack([torch.func.jvp(f, (x,), (e,))[1] for e in torch.eye(x.numel(), dtype=x.dtype)], 1)
def by_vjp(f, x):
    out, pullback = torch.func.vjp(f, x)
    return torch.stack([pullback(e)[0] for e in torch.eye(out.numel(), dtype=out.dtype)])
def by_jacfwd(f, x):
    return torch.func.jacfwd(f)(x)
def by_jacrev(f, x):
    return torch.func.jacrev(f)(x)
def by_forward_ad(f, x):
    columns = []
    for e in torch.eye(x.numel(), dtype=x.dtype):
        with fwAD.dual_level():
            columns.append(fwAD.unpack_dual(f(fwAD.make_dual(x, e))).tangent)
    return torch.stack(columns, 1)
def by_backward(f, x):
    rows = []
    for e in torch.eye(3, dtype=x.dtype):
        leaf = x.clone().requires_grad_()
        f(leaf).backward(e)
        rows.append(leaf.grad)
    return torch.stack(rows)
def by_functional_jvp(f, x):
    return torch.stack([torch.autograd.functional.jvp(f, x, e)[1] for e in torch.eye(x.numel(), dtype=x.dtype)], 1)
def by_functional_jacobian(f, x):
    return torch.autograd.functional.jacobian(f, x)
def by_vectorized_jacobian(f, x):
    return torch.autograd.functional.jacobian(f, x, vectorize=True)
def by_batched_grads(f, x):
    leaf = x.clone().requires_grad_()
    return torch.autograd.grad(f(leaf), leaf, torch.eye(3, dtype=x.dtype), is_grads_batched=True)[0]
def by_linearize(f, x):
    _, jvp = torch.func.linearize(f, x)
    return torch.stack([jvp(e) for e in torch.eye(x.numel(), dtype=x.dtype)], 1)
"""


@pytest.mark.parametrize("how", ["by_jvp", "by_vjp", "by_jacfwd", "by_jacrev", "by_forward_ad", "by_backward",
                                 "by_functional_jvp", "by_functional_jacobian", "by_vectorized_jacobian",
                                 "by_batched_grads", "by_linearize"])
def test_a_handed_over_function_can_be_differentiated_in_every_mode(kernel, how):
    k = kernel(FUNCTIONS)
    weights = torch.randn(3, 2, dtype=torch.float64)

    def f(v):  # the harness's: it runs here, whenever the kernel calls it
        return weights @ torch.tanh(v) + v[0] * v[1]

    x = torch.tensor([0.3, -0.7], dtype=torch.float64)
    assert torch.allclose(k[how](f, x), torch.autograd.functional.jacobian(f, x), atol=1e-10), how


def test_exceptions_keep_their_builtin_type_and_message(kernel):
    k = kernel("def basis(i):\n    raise ValueError(f'i = {i} is out of range')\n"
               "class Mine(Exception):\n    pass\ndef odd():\n    raise Mine('mine')\n"
               "class OutOfRange(ValueError):\n    pass\ndef subclass():\n    raise OutOfRange('out')\n")
    with pytest.raises(ValueError, match="i = 0 is out of range"):
        k["basis"](0)
    with pytest.raises(ValueError, match="out"):  # a subclass of a builtin error is that error too
        k["subclass"]()
    with pytest.raises(RemoteError) as raised:
        k["odd"]()
    assert raised.value.type_name == "Mine"
    with pytest.raises(NameError):
        k["undefined_name"]


def test_no_remote_object_can_decide_a_verdict(kernel):
    k = kernel("class Yes:\n    def __eq__(self, other):\n        return True\n    def __bool__(self):\n"
               "        return True\n    def __lt__(self, other):\n        return True\n"
               "import torch\nclass Net(torch.nn.Module):\n    pass\n")
    yes = k["Yes"]()
    assert (yes == 6) is False and (yes != 6) is True and yes == yes
    with pytest.raises(TypeError):
        bool(yes)
    with pytest.raises(TypeError):
        _ = yes < 3
    net = k["Net"]()
    assert isinstance(net, torch.nn.Module) and not isinstance(yes, torch.nn.Module)  # by the nearest class here
    assert type_name(yes) == "Yes"


def test_the_kernel_reaches_only_what_the_policy_shares(kernel):
    k = kernel("""
        def probe(f, model):
            found = []
            for attempt in (lambda: f.__globals__, lambda: f.__code__, lambda: model._modules,
                            lambda: model.__dict__, lambda: setattr(model, "training", False)):
                try:
                    attempt()
                    found.append("reached")
                except AttributeError:
                    found.append("refused")
            model.eval()  # a public method of what it was handed: allowed
            return found, model.training
    """)
    secret = "the hidden test's expected value"

    def f(x):
        return secret

    model = torch.nn.Linear(2, 2)
    found, training = k["probe"](f, model)
    assert found == ["refused"] * 5 and training is False and not model.training


def test_nothing_handed_over_leads_to_code_or_can_be_changed(kernel):
    k = kernel("""
        def attempt(action):
            try:
                action()
                return "reached"
            except (AttributeError, TypeError) as error:
                return type(error).__mro__[-2].__name__ if False else "refused"
        def probe(model, loader, f):
            return {
                "generator frame": attempt(lambda: model.parameters().gi_frame.f_builtins),
                "iterator internals": attempt(lambda: iter(loader)._dataset),
                "item assignment": attempt(lambda: model.__setitem__(0, None)),
                "in-place operator": attempt(lambda: model.__iadd__(1)),
                "a method not for students": attempt(lambda: model.register_forward_hook(print)),
                "apply": attempt(lambda: model.apply(print)),
                "load_state_dict": attempt(lambda: model.load_state_dict({})),
                "a function's code": attempt(lambda: f.__code__),
                "calling what is allowed": attempt(lambda: (model.eval(), list(model.parameters()), len(loader),
                                                            next(iter(loader)), f(2))),
            }
    """)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4, 2)), batch_size=2)
    found = k["probe"](model, loader, lambda x: x + 1)
    assert found.pop("calling what is allowed") == "reached"
    assert set(found.values()) == {"refused"}, found
    assert len(model) == 2 and not model._forward_hooks


def test_a_remote_object_is_not_read_through_protocols(kernel):
    k = kernel("class Fake:\n    __array_interface__ = {'data': (8, True), 'shape': (4,), 'typestr': '<f8'}\n"
               "def square(x):\n    return Fake()\n")
    import numpy as np

    got = k["square"](3.0)
    with pytest.raises((TypeError, AssertionError)):  # never an array read from an address it chose
        np.testing.assert_allclose(got, 9.0)


def test_a_session_is_bounded_in_the_data_it_takes(kernel):
    k = kernel("import torch\ndef big():\n    return torch.zeros(3 * 2**19)\n")  # 6 MiB a call
    k.endpoint.policy.max_session_bytes = 14 * 2**20
    k["big"]()
    k["big"]()
    with pytest.raises(BridgeError, match="MiB sent in one test"):
        k["big"]()


def test_malformed_and_oversized_messages_end_the_session_cleanly(tmp_path):
    path = str(tmp_path / "bridge.sock")
    for garbage in [b"\x00\x00\x00\x05\x00\x00\x00\x00{bad}", b"\x00\x00\x00\x02\x00\x00\x00\x00[]",
                    struct.pack(">II", 2**31, 0), b'\x00\x00\x00\x14\x00\x00\x00\x00{"kind": "reply",  }',
                    b'\x00\x00\x00\x1f\x00\x00\x00\x00{"kind":"reply","value":{"$x":1}}']:
        with listening(path) as server:
            client = socket.socket(socket.AF_UNIX)
            client.connect(path)
            endpoint = Endpoint(accept_one(server, time.monotonic() + 5), HarnessPolicy(2**20),
                                deadline=time.monotonic() + 5)
            client.sendall(garbage)
            with pytest.raises(BridgeError):
                endpoint.request("global", "anything")
            client.close()
            endpoint.close()


def test_a_kernel_that_never_answers_times_out(kernel):
    k = kernel("import time\ndef slow():\n    time.sleep(30)\n", timeout=60)
    k.endpoint.deadline = time.monotonic() + 1
    start = time.monotonic()
    with pytest.raises(BridgeTimeout):
        k["slow"]()
    assert time.monotonic() - start < 5
    k.process.kill()


def test_a_type_name_from_the_kernel_never_imports_anything(kernel):
    k = kernel("class Fake:\n    pass\nFake.__module__ = 'antigravity'\nFake.__qualname__ = 'Thing'\n")
    obj = k["Fake"]()
    assert "antigravity" not in sys.modules
    assert not isinstance(obj, type) and type_name(obj) == "Thing"
