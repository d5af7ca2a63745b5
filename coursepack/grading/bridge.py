"""Objects across the boundary between the trusted grader and a student's kernel.

The grader never runs student code and the student's kernel never sees a hidden test: a test cell
runs in the grader's harness process (harness.py), where every name the student defined is a
`Remote` that forwards to the kernel over one Unix stream socket. This module is both ends of that
socket: `Endpoint` (a session: one test cell), `Remote`, and `serve_kernel` (the kernel's side).

What crosses, and how. The split is PrairieLearn's pytest grader's (student code in a subprocess
behind a Unix socket, tests in the harness, values moved as data); unlike it, objects, in-place
updates and autograd cross too, because the practical's exercises are models, optimisers and an
autodiff engine, not only functions of numbers:

- **Plain values** are copied: None, bools, numbers, strings, bytes, lists, tuples, dicts, sets,
  slices, ranges, `torch.dtype`, `torch.device`, `torch.Size`, numeric numpy arrays. Nothing is
  unpickled: a message is a JSON header and raw byte blobs, and decoding builds only these types.
- **Tensors** are copied too but keep their identity: a tensor's first crossing makes a *mirror*
  on the other side, the same object every later time it crosses in the session. Every message
  carries what changed in the tensors both sides hold (data, `.grad`, `requires_grad`), so a
  function that updates its arguments in place (`sgd_step(params)`, including `p.data -= ...`,
  which autograd's version counter does not see), a test that sets a model's weights and `.grad`
  after a backward pass behave as in one process.
- **Autograd crosses**: the mirror of a tensor that has a graph on its owner's side is a node whose
  backward pass runs there (`y = net.forward(x); y.sum().backward()` fills the student's
  `W.grad`, and the test reads it). When the kernel differentiates through a function the test
  handed over (`torch.func.jvp`, `vjp`, `jacrev`, `jacfwd`, forward AD, `autograd.grad`), the
  call is one `RemoteCall` operation whose products the owner computes.
- **Everything else** stays where it lives and is used through a `Remote`: attribute reads, calls,
  operators, indexing and iteration go to the owner. A test's model, loader and optimiser are
  called back in the harness; a student's `Value` is multiplied in the kernel.

Trust is not symmetric. The kernel does whatever the harness asks (`Policy`). The harness answers
the kernel only through `HarnessPolicy`: public attributes of the objects the test handed over, no
attribute writes, bounded messages. And on the harness's side no `Remote` can decide a verdict:
its truth value and its comparisons raise (a student's `__eq__` or `__bool__` would otherwise be
the judge), so checks compare plain values and tensors on the harness's side.

A session starts with empty tables and ends with its test cell: nothing outlives the cell.
"""
from __future__ import annotations

import builtins
import collections.abc
import contextlib
import copy
import importlib
import json
import math
import operator
import socket
import struct
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import _disable_current_modes

MiB = 2**20
HEADER = struct.Struct(">II")  # JSON length, number of blobs
BLOB = struct.Struct(">Q")
MAX_DEPTH = 64


class BridgeError(Exception):
    """The other side broke the protocol, or a value cannot cross."""


class BridgeTimeout(BridgeError):
    """No answer before the deadline."""


class RemoteError(Exception):
    """An exception raised on the other side: its type name and message (never a traceback)."""

    def __init__(self, type_name: str, message: str):
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name, self.remote_message = type_name, message


class Refused(AttributeError):
    """What a policy does not let the other side do."""


# The other side's exception arrives as a class that is both a RemoteError and the builtin of that
# name, so that `except ValueError` (check_raises(ValueError, ...)) and getattr's fallbacks work.
_BUILTIN_ERRORS = {name: getattr(builtins, name) for name in (
    "ArithmeticError", "AssertionError", "AttributeError", "IndexError", "KeyError", "LookupError",
    "NameError", "NotImplementedError", "OverflowError", "RecursionError", "RuntimeError", "StopIteration",
    "TypeError", "UnboundLocalError", "ValueError", "ZeroDivisionError", "MemoryError", "FloatingPointError")}
_REMOTE_ERRORS: dict[tuple, type] = {}


def remote_error(type_name: str, message: str, bases: list | tuple = ()) -> Exception:
    """The other side's exception: of its own name, and an instance of the first builtin along its MRO."""
    names = ["AttributeError" if name == "Refused" else str(name) for name in (type_name, *bases)]
    base = next((_BUILTIN_ERRORS[name] for name in names if name in _BUILTIN_ERRORS), None)
    key = (type_name, base)
    kind = _REMOTE_ERRORS.get(key)
    if kind is None:
        parents = (RemoteError,) if base is None else (RemoteError, base)
        kind = _REMOTE_ERRORS[key] = type(type_name, parents, {"__init__": RemoteError.__init__})
    return kind(type_name, message)


# ------------------------------------------------------------------------------------------------
# policies: what one side lets the other do


class Policy:
    """Everything is allowed: the kernel serving the trusted harness."""

    max_message_bytes = 1024 * MiB
    max_session_bytes = 2**62
    trusts_peer = True

    def check_attribute(self, obj, name: str) -> None:
        pass

    def check_setattr(self, obj, name: str) -> None:
        pass

    def check_call(self, obj) -> None:
        pass

    def check_operation(self, obj, name: str) -> None:
        pass

    def exported(self, value):
        """What the peer gets a reference to in place of `value`."""
        return value


# What a kernel may call on the grader's objects: the methods the exercises need of models, loaders and
# optimisers, each of which reads or does what an exercise asks (train/eval, zero_grad, step).
HARNESS_METHODS = frozenset({
    "forward", "parameters", "named_parameters", "buffers", "named_buffers", "children", "named_children",
    "modules", "named_modules", "train", "eval", "zero_grad", "step", "to", "cpu", "cuda", "float", "double",
    "half", "state_dict", "get_submodule", "get_parameter", "get_buffer", "extra_repr",
    "keys", "values", "items", "get", "index", "count"})
# Operators a kernel may apply to them: the reading ones (no item assignment, no in-place operator).
HARNESS_OPERATORS = frozenset({
    "__getitem__", "__len__", "__contains__", "__bool__", "__round__", "__float__", "__int__", "__index__",
    "__complex__", "__neg__", "__pos__", "__abs__", "__invert__", "__eq__", "__ne__", "__lt__", "__le__",
    "__gt__", "__ge__", *(f"__{p}{base}__" for base in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow",
                                                        "matmul", "and", "or", "xor", "lshift", "rshift")
                          for p in ("", "r"))})
# Kinds of object the grader never hands out: each leads to code, frames, modules or the interpreter.
NEVER_EXPORTED = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType, types.CellType, type,
                  types.WrapperDescriptorType, types.MethodWrapperType,
                  types.MethodDescriptorType, types.ClassMethodDescriptorType, types.GetSetDescriptorType,
                  types.MemberDescriptorType, types.MappingProxyType, types.CoroutineType, types.AsyncGeneratorType,
                  property, staticmethod, classmethod, BaseException)


# Modules whose builtin functions a test may hand over (torch.exp, math.sin): numbers in, numbers out.
MATH_MODULES = ("torch", "math", "cmath")


def _allowed_builtin(fn) -> bool:
    """A builtin function a kernel may hold: a math function, or a method on the allowlist bound to an object."""
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        return fn.__name__ in HARNESS_METHODS
    module = getattr(fn, "__module__", None) or ""
    return module.split(".")[0] in MATH_MODULES


class _OnlyNext:
    """An iterator of the grader's, of which a kernel may only take the next item (a generator's
    public attributes lead to its frame, and from there anywhere)."""

    __slots__ = ("_inner",)

    def __init__(self, inner):
        self._inner = inner

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._inner)


class HarnessPolicy(Policy):
    """What a student's kernel may do with the objects a test handed over: read them, call the methods
    the exercises need, iterate; never reach code, frames, modules or builtins, never change them."""

    trusts_peer = False

    def __init__(self, max_message_bytes: int = 256 * MiB, max_session_bytes: int = 1024 * MiB):
        self.max_message_bytes, self.max_session_bytes = max_message_bytes, max_session_bytes

    def check_attribute(self, obj, name: str) -> None:
        # Private and dunder attributes lead to code, globals and frames: not the student's business.
        if not isinstance(name, str) or name.startswith("_") or isinstance(obj, _OnlyNext):
            raise Refused(f"the grader does not share the attribute {name!r} of its {type(obj).__name__}")

    def check_setattr(self, obj, name: str) -> None:
        raise Refused(f"the grader's {type(obj).__name__} is read-only: cannot set or delete {name!r}")

    def check_call(self, obj) -> None:
        if isinstance(obj, types.MethodType):
            if obj.__name__ not in HARNESS_METHODS:
                raise Refused(f"the grader's {type(obj.__self__).__name__}.{obj.__name__}() is not for students")
        elif isinstance(obj, types.BuiltinFunctionType):
            if not _allowed_builtin(obj):
                raise Refused(f"the grader's {obj.__name__}() is not for students")
        elif isinstance(obj, NEVER_EXPORTED) or isinstance(obj, _OnlyNext) or not callable(obj):
            raise TypeError(f"the grader's {type(obj).__name__} is not callable")

    def check_operation(self, obj, name: str) -> None:
        if name not in HARNESS_OPERATORS:
            raise Refused(f"the grader's {type(obj).__name__} is read-only: {name} is not allowed")

    def exported(self, value):
        if isinstance(value, NEVER_EXPORTED) or isinstance(value, types.BuiltinFunctionType) and \
                not _allowed_builtin(value):
            raise Refused(f"the grader does not hand out its {type(value).__name__} objects")
        if isinstance(value, types.GeneratorType | collections.abc.Iterator) and not isinstance(value, _OnlyNext):
            return _OnlyNext(value)
        return value


# ------------------------------------------------------------------------------------------------
# wire format: [JSON length][blob count] JSON ([blob length] blob)*


def send_frame(sock: socket.socket, header: dict, blobs: list[bytes]) -> None:
    text = json.dumps(header, separators=(",", ":")).encode()
    parts = [HEADER.pack(len(text), len(blobs)), text]
    for blob in blobs:
        parts += [BLOB.pack(len(blob)), blob]
    sock.sendall(b"".join(parts))


def _read_exact(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BridgeTimeout("no answer before the time limit")
            sock.settimeout(left)
        try:
            n = sock.recv_into(view[got:], size - got)
        except TimeoutError:
            raise BridgeTimeout("no answer before the time limit") from None
        except OSError as error:
            raise BridgeError(f"the connection broke ({error})") from None
        if n == 0:
            raise BridgeError("the other side closed the connection")
        got += n
    return bytes(buffer)


def recv_frame(sock: socket.socket, limit: int, deadline: float | None = None) -> tuple[dict, list[bytes]]:
    text_size, count = HEADER.unpack(_read_exact(sock, HEADER.size, deadline))
    if text_size > limit or count > 100_000:
        raise BridgeError(f"a message larger than {limit // MiB} MiB")
    try:
        header = json.loads(_read_exact(sock, text_size, deadline))
    except (ValueError, RecursionError) as error:
        raise BridgeError(f"malformed message ({type(error).__name__})") from None
    blobs, total = [], text_size
    for _ in range(count):
        (size,) = BLOB.unpack(_read_exact(sock, BLOB.size, deadline))
        total += size
        if total > limit:
            raise BridgeError(f"a message larger than {limit // MiB} MiB")
        blobs.append(_read_exact(sock, size, deadline))
    if not isinstance(header, dict):
        raise BridgeError("malformed message")
    return header, blobs


# ------------------------------------------------------------------------------------------------
# tensors: what crosses, and what changed since

DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)}


def dtype_name(dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise BridgeError(f"a tensor of dtype {name} cannot cross to the grader")
    return name


def _flat(t: torch.Tensor) -> torch.Tensor:
    """A dense 1-D CPU copy of `t` (fresh strides: a one-element view can count as contiguous with a stride of 4)."""
    return torch.empty(t.numel(), dtype=t.dtype).copy_(t.detach().reshape(-1))


def _plain(t: torch.Tensor) -> torch.Tensor:
    """A detached, dense CPU copy: what the other side gets of `t`."""
    return _flat(t).reshape(t.shape)


def _raw(t: torch.Tensor) -> bytes:
    return _flat(t).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _tensor_from(dtype, shape, blob: bytes) -> torch.Tensor:
    if dtype not in DTYPES:
        raise BridgeError(f"unknown dtype {dtype!r}")
    if not (isinstance(shape, list) and len(shape) <= 32 and all(type(s) is int and s >= 0 for s in shape)):
        raise BridgeError("malformed tensor shape")
    kind = DTYPES[dtype]
    count = math.prod(shape)
    if len(blob) != count * torch.empty((), dtype=kind).element_size():
        raise BridgeError("a tensor's bytes do not match its shape")
    if not count:
        return torch.empty(shape, dtype=kind)
    return torch.frombuffer(bytearray(blob), dtype=kind).reshape(shape)


def _bytes_view(t: torch.Tensor) -> torch.Tensor:
    """`t`'s bytes as a 1-D uint8 tensor: a view when `t` is a dense CPU tensor (no copy), else a copy."""
    try:
        flat = t.detach().reshape(-1)
        if t.device.type == "cpu" and (not flat.numel() or flat.stride(0) == 1) and flat.data_ptr() == t.data_ptr():
            return flat.view(torch.uint8)
    except RuntimeError:  # a tensor inside a torch.func transform has no storage of its own
        pass
    return _flat(t).view(torch.uint8)


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Bit-for-bit equal (NaN equals NaN): has a tensor changed since it was last sent?"""
    if a is None or b is None:
        return a is b
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(_bytes_view(a), _bytes_view(b))


@dataclass
class Seen:
    """What the other side holds of a shared tensor, as of the last message. Changes are found by
    comparing contents: autograd's version counter does not see writes through `.data`."""

    data: torch.Tensor
    requires_grad: bool
    grad: torch.Tensor | None

    @classmethod
    def of(cls, t: torch.Tensor) -> Seen:
        grad = t.grad if t.is_leaf and t.grad is not None else None
        return cls(_plain(t), t.requires_grad, None if grad is None else _plain(grad))


@dataclass
class Shared:
    """A tensor both sides hold: `mine` (this side owns it, the peer mirrors it) or the peer's, mirrored here."""

    tensor: torch.Tensor
    seen: Seen
    mine: bool


def _can_require_grad(t: torch.Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()


# ------------------------------------------------------------------------------------------------
# Remote: a reference to an object that lives on the other side


class Remote:
    """An object that lives on the other side; using it sends a request there.

    On the harness's side (`endpoint.policy.trusts_peer` false) a Remote has no truth value and
    compares equal only to itself: a verdict decided by the student's `__eq__` would be the student's.
    """

    __slots__ = ("_endpoint", "_oid", "_type", "_mro", "__weakref__")

    def __init__(self, endpoint: Endpoint, oid: int, type_name: str, mro: tuple[str, ...] = ()):
        object.__setattr__(self, "_endpoint", endpoint)
        object.__setattr__(self, "_oid", oid)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_mro", mro)

    def _ask(self, op, *args):
        return object.__getattribute__(self, "_endpoint").request(op, self, *args)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__") and not self._endpoint.policy.trusts_peer:
            # Python and libraries look up protocols this way (numpy's __array_interface__ would read
            # memory at an address the student chose): the harness asks the student for none of them.
            raise AttributeError(name)
        return self._ask("getattr", name)

    def __setattr__(self, name, value):
        self._ask("setattr", name, value)

    def __delattr__(self, name):
        self._ask("delattr", name)

    def __call__(self, *args, **kwargs):
        return self._endpoint.call(self, args, kwargs)

    def __getitem__(self, key):
        return self._ask("op", "__getitem__", key)

    def __setitem__(self, key, value):
        self._ask("op", "__setitem__", key, value)

    def __delitem__(self, key):
        self._ask("op", "__delitem__", key)

    def __len__(self):
        return _exactly(self._ask("op", "__len__"), int, "len()")

    def __iter__(self):
        return self._ask("iter")

    def __next__(self):
        return self._ask("next")

    def __contains__(self, item):
        return _exactly(self._ask("op", "__contains__", item), bool, "in")

    def __repr__(self):
        text = self._ask("repr")
        return text if isinstance(text, str) else f"<{type_name(self)}>"

    def __str__(self):
        text = self._ask("str")
        return text if isinstance(text, str) else f"<{type_name(self)}>"

    def __format__(self, spec):
        return format(str(self), spec)

    def __hash__(self):
        return hash((id(self._endpoint), self._oid))

    def __deepcopy__(self, memo):
        return self._ask("deepcopy")

    def __copy__(self):
        return self._ask("copy")

    def __enter__(self):
        return self._ask("op", "__enter__")

    def __exit__(self, *exc):
        return self._ask("op", "__exit__", None, None, None)

    def __bool__(self):
        if self._endpoint.policy.trusts_peer:
            return _exactly(self._ask("op", "__bool__"), bool, "bool()")
        raise TypeError(f"the grader takes no truth value from your {type_name(self)}: "
                        "return a bool, a number or a tensor")

    def __round__(self, *ndigits):
        return self._ask("op", "__round__", *ndigits)

    @property
    def __class__(self):
        # isinstance(remote, nn.Module) as for the object itself: its class, or for a class defined in the
        # notebook the nearest base that exists on this side too. Never a tensor class: tensors cross as
        # mirrors, so a Remote claiming to be one is not.
        for name in (self._type, *self._mro):
            resolved = _resolve_class(name)
            if resolved is not None:
                return Remote if issubclass(resolved, torch.Tensor) or resolved is object else resolved
        return Remote


def _install_operators() -> None:
    def binary(name):
        return lambda self, other: self._ask("op", name, other)

    for base in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
                 "lshift", "rshift"):
        for prefix in ("", "r", "i"):
            setattr(Remote, f"__{prefix}{base}__", binary(f"__{prefix}{base}__"))
    for name in ("__neg__", "__pos__", "__abs__", "__invert__"):
        setattr(Remote, name, lambda self, _n=name: self._ask("op", _n))
    for name, kind in (("__float__", float), ("__int__", int), ("__index__", int), ("__complex__", complex)):
        setattr(Remote, name, lambda self, _n=name, _k=kind: _exactly(self._ask("op", _n), _k, _n))

    def comparison(name):
        def compare(self, other):
            if self._endpoint.policy.trusts_peer:
                return self._ask("op", name, other)
            if name in ("__eq__", "__ne__"):
                return (self is other) == (name == "__eq__")
            raise TypeError(f"the grader does not order your {type_name(self)}: return a number or a tensor")
        return compare

    for name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        setattr(Remote, name, comparison(name))


_install_operators()
OPERATORS = {name for name in vars(Remote) if name.startswith("__") and name not in (
    "__init__", "__getattr__", "__setattr__", "__delattr__", "__call__", "__iter__", "__next__", "__repr__",
    "__str__", "__format__", "__hash__", "__deepcopy__", "__copy__", "__class__", "__slots__", "__module__",
    "__doc__", "__weakref__", "__qualname__", "__firstlineno__", "__static_attributes__", "_ask")}


def _exactly(value, kind, what):
    if kind is int and type(value) is bool:
        return int(value)
    if kind is float and type(value) is int:
        return float(value)
    if kind is complex and type(value) in (int, float):
        return complex(value)
    if type(value) is not kind:
        raise TypeError(f"{what} gave {type(value).__name__}, not {kind.__name__}")
    return value


def _resolve_class(qualified: str):
    """The class named `module:qualname` on this side, if it has one (student-defined classes it has not)."""
    module, _, qualname = qualified.partition(":")
    if module in ("__main__", "builtins") or module not in sys.modules or not qualname:
        return None  # (a name from the other side never makes this side import anything)
    try:
        obj = sys.modules[module]
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:  # noqa: BLE001 - any failure means "not on this side"
        return None
    return obj if isinstance(obj, type) else None


def type_name(obj) -> str:
    """What a message should call `obj`: the remote type's name for a Remote."""
    if type(obj) is Remote:
        return object.__getattribute__(obj, "_type").rpartition(":")[2].rpartition(".")[2] or "object"
    return type(obj).__name__


# ------------------------------------------------------------------------------------------------
# autograd across the boundary


def _needs_graph_call(t: torch.Tensor) -> bool:
    """Differentiable, or wrapped by torch.func / forward AD: the call must be one RemoteCall operation."""
    if torch._C._functorch.is_functorch_wrapped_tensor(t) or t.requires_grad:
        return True
    return torch.autograd.forward_ad.unpack_dual(t).tangent is not None


class RemoteCall(torch.autograd.Function):
    """A call the kernel makes to a function the test handed over, as one differentiable operation.

    forward asks the owner to call it on leaves made from the tensor arguments and keep the graph;
    backward asks it for the vector-Jacobian product (its own parameters accumulate their .grad, as
    in one process). Forward-mode products, vmap'ed backward passes and double backward multiply by
    the Jacobian instead, which the owner computes once per call: plain torch operations, so they
    compose with torch.func's transforms.
    """

    @staticmethod
    def forward(endpoint, target, template, anchor, *tensors):
        return endpoint._remote_graph_call(target, template, tensors)

    @staticmethod
    def setup_context(ctx, inputs, output):
        endpoint, *_ = inputs
        ctx.endpoint, ctx.handle, ctx.out_shape = endpoint, endpoint._last_graph[0], output.shape
        ctx.in_shapes = [t.shape for t in inputs[4:]]
        if not endpoint._last_graph[1]:
            ctx.mark_non_differentiable(output)

    @staticmethod
    def backward(ctx, grad):
        functorch = torch._C._functorch
        if torch.is_grad_enabled() or functorch.is_functorch_wrapped_tensor(grad) or \
                functorch.is_legacy_batchedtensor(grad):
            grads = [None if j is None else (grad.reshape(-1).to(j.dtype) @ j).reshape(shape)
                     for j, shape in zip(ctx.endpoint._jacobians(ctx.handle), ctx.in_shapes, strict=True)]
        else:
            grads = ctx.endpoint.request("vjp", ctx.handle, grad.detach())
        return None, None, None, None, *grads

    @staticmethod
    def jvp(ctx, _endpoint, _target, _template, _anchor, *tangents):
        total = None
        for j, t in zip(ctx.endpoint._jacobians(ctx.handle), tangents, strict=True):
            if j is not None and t is not None:
                part = (j @ t.reshape(-1).to(j.dtype)).reshape(ctx.out_shape)
                total = part if total is None else total + part
        return torch.zeros(ctx.out_shape) if total is None else total

    @staticmethod
    def vmap(info, in_dims, endpoint, target, template, anchor, *tensors):
        # vmap over calls of a handed-over function: one remote call per element.
        dims = in_dims[4:]
        outs = [endpoint._remote_graph_call(target, template,
                                            [t if d is None else t.select(d, i) for t, d in zip(tensors, dims,
                                                                                              strict=True)])
                for i in range(info.batch_size)]
        return torch.stack(outs), 0


class _PeerGraph(torch.autograd.Function):
    """The mirror of a tensor with a graph on the other side: backward runs the owner's backward from it."""

    @staticmethod
    def forward(endpoint, oid, data, anchor):
        return data.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.endpoint, ctx.oid = inputs[0], inputs[1]

    @staticmethod
    def backward(ctx, grad):
        ctx.endpoint.request("graph_backward", ctx.oid, grad.detach())
        return None, None, None, None


@dataclass
class _Graph:
    """A result kept for the peer's autograd: its output and the leaves its tensor arguments became."""

    output: torch.Tensor
    leaves: list[torch.Tensor | None]
    jacobians: list | None = None


# ------------------------------------------------------------------------------------------------
# the endpoint


@dataclass
class Endpoint:
    """One side of a bridge session: the socket, what both sides share, and the request loop."""

    sock: socket.socket
    policy: Policy = field(default_factory=Policy)
    deadline: float | None = None  # monotonic time after which waiting for the peer fails
    namespace: dict = field(default_factory=dict)  # what "global" requests read (the kernel's user namespace)
    closed: bool = False

    def __post_init__(self):
        self._exports: dict[int, Any] = {}  # oid -> my object the peer refers to (kept alive for the session)
        self._oids: dict[int, int] = {}  # id(my object) -> oid
        self._shared: dict[tuple[bool, int], Shared] = {}  # (mine, oid) -> tensor held by both sides
        self._mirror_oids: dict[int, int] = {}  # id(mirror) -> the peer's oid
        self._remotes: dict[int, Remote] = {}
        self._graphs: dict[int, _Graph] = {}
        self._last_graph = (0, False)
        self._received = 0  # bytes of blobs received in this session (bounded by the policy)
        self._jacobian_cache: dict[int, list] = {}  # (the caller's side of RemoteCall) per graph handle

    # -- encoding -----------------------------------------------------------------------------------
    def encode(self, value, blobs: list[bytes], depth: int = 0):
        if depth > MAX_DEPTH:
            raise BridgeError(f"a value nested more than {MAX_DEPTH} levels deep")
        kind = type(value)
        if value is None or kind in (bool, str):
            return value
        if kind is int:
            return value if abs(value) < 2**53 else {"$int": str(value)}
        if kind is float:
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, torch.Tensor):
            return self._encode_tensor(value, blobs)
        if kind is Remote:
            if object.__getattribute__(value, "_endpoint") is not self:
                raise BridgeError("a remote object from another session")
            return {"$yours": object.__getattribute__(value, "_oid")}
        if kind in (list, tuple, set, frozenset) or isinstance(value, tuple) and (
                hasattr(value, "_fields") or kind.__module__ == "torch.return_types"):
            tag = kind.__name__ if kind in (list, set, frozenset) else "tuple"
            return {f"${tag}": [self.encode(v, blobs, depth + 1) for v in value]}
        if kind is dict:
            return {"$dict": [[self.encode(k, blobs, depth + 1), self.encode(v, blobs, depth + 1)]
                              for k, v in value.items()]}
        if kind is complex:
            return {"$complex": [value.real, value.imag]}
        if kind in (bytes, bytearray):
            blobs.append(bytes(value))
            return {"$bytes": len(blobs) - 1}
        if kind is slice:
            return {"$slice": [self.encode(v, blobs, depth + 1) for v in (value.start, value.stop, value.step)]}
        if value is Ellipsis:
            return {"$ellipsis": 0}
        if kind is range:
            return {"$range": [value.start, value.stop, value.step]}
        if kind is torch.dtype:
            return {"$dtype": dtype_name(value)}
        if kind is torch.device:
            return {"$device": str(value)}
        if kind is torch.Size:
            return {"$size": list(value)}
        if kind.__module__ == "numpy":
            encoded = self._encode_numpy(value, blobs)
            if encoded is not None:
                return encoded
        return self._export(value)

    def _encode_numpy(self, value, blobs):
        import numpy as np

        if isinstance(value, np.ndarray | np.generic) and value.dtype.kind in "biufc":
            array = np.asarray(value)  # (ascontiguousarray would make a scalar 1-D; tobytes is C order anyway)
            blobs.append(array.tobytes())
            return {"$ndarray": len(blobs) - 1, "dtype": array.dtype.str, "shape": list(array.shape),
                    "scalar": isinstance(value, np.generic)}
        return None

    def _oid_for(self, obj) -> int:
        oid = self._oids.get(id(obj))
        if oid is None:
            oid = self._oids[id(obj)] = len(self._oids) + 1
        return oid

    def _export(self, value) -> dict:
        value = self.policy.exported(value)
        oid = self._oid_for(value)
        self._exports[oid] = value
        mro = [f"{k.__module__}:{k.__qualname__}" for k in type(value).__mro__[:8]]
        return {"$mine": oid, "type": mro[0], "mro": mro[1:]}

    def _encode_tensor(self, t: torch.Tensor, blobs: list[bytes]) -> dict:
        if t.layout != torch.strided or t.is_quantized or t.is_meta or t.is_nested:
            return self._export(t)
        peer_oid = self._mirror_oids.get(id(t))
        if peer_oid is not None:
            return {"$yours_t": peer_oid}  # its changes travel in the message's sync list
        oid = self._oid_for(t)
        if (True, oid) in self._shared:
            return {"$mine_t": oid}
        seen = Seen.of(t)
        self._shared[(True, oid)] = Shared(t, seen, True)
        self._exports[oid] = t
        blobs.append(_raw(seen.data))
        record = {"$mine_t": oid, "dtype": dtype_name(t.dtype), "shape": list(t.shape), "blob": len(blobs) - 1,
                  "requires_grad": t.requires_grad, "parameter": isinstance(t, torch.nn.Parameter),
                  "graph": t.grad_fn is not None}
        if seen.grad is not None:
            blobs.append(_raw(seen.grad))
            record["grad"] = [dtype_name(seen.grad.dtype), list(seen.grad.shape), len(blobs) - 1]
        return record

    # -- decoding -----------------------------------------------------------------------------------
    def decode(self, value, blobs: list[bytes], depth: int = 0):
        if depth > MAX_DEPTH:
            raise BridgeError(f"a value nested more than {MAX_DEPTH} levels deep")
        if value is None or type(value) in (bool, int, float, str):
            return value
        if type(value) is not dict or not value:
            raise BridgeError("malformed message")
        tag, body = next(iter(value.items()))

        def items():
            if type(body) is not list:
                raise BridgeError("malformed message")
            return [self.decode(v, blobs, depth + 1) for v in body]

        match tag:
            case "$list":
                return items()
            case "$tuple":
                return tuple(items())
            case "$set":
                return set(items())
            case "$frozenset":
                return frozenset(items())
            case "$dict":
                if type(body) is not list or not all(type(p) is list and len(p) == 2 for p in body):
                    raise BridgeError("malformed message")
                return {self.decode(k, blobs, depth + 1): self.decode(v, blobs, depth + 1) for k, v in body}
            case "$int":
                if type(body) is not str or len(body) > 4300:
                    raise BridgeError("malformed integer")
                return int(body)
            case "$float":
                if body not in ("nan", "inf", "-inf"):
                    raise BridgeError("malformed float")
                return float(body)
            case "$complex":
                return complex(float(body[0]), float(body[1]))
            case "$bytes":
                return _blob(blobs, body)
            case "$slice":
                return slice(*items())
            case "$ellipsis":
                return Ellipsis
            case "$range":
                return range(*(int(v) for v in body))
            case "$dtype":
                if body not in DTYPES:
                    raise BridgeError(f"unknown dtype {body!r}")
                return DTYPES[body]
            case "$device":
                return torch.device(str(body))
            case "$size":
                return torch.Size([int(v) for v in body])
            case "$ndarray":
                return self._decode_numpy(value, blobs)
            case "$mine":  # the peer's object
                mro = value.get("mro", [])
                return self._remote(int(body), str(value.get("type", ""))[:300],
                                    tuple(str(m)[:300] for m in mro[:8]) if type(mro) is list else ())
            case "$yours":
                if int(body) not in self._exports:
                    raise BridgeError("an unknown object reference")
                return self._exports[int(body)]
            case "$mine_t":
                return self._mirror(int(body), value, blobs)
            case "$yours_t":
                entry = self._shared.get((True, int(body)))
                if entry is None:
                    raise BridgeError("an unknown tensor")
                return entry.tensor
        raise BridgeError(f"unknown tag {tag!r}")

    def _decode_numpy(self, value, blobs):
        import numpy as np

        dtype = np.dtype(str(value.get("dtype")))
        if dtype.kind not in "biufc":
            raise BridgeError("a numpy array of this dtype cannot cross")
        array = np.frombuffer(_blob(blobs, value["$ndarray"]), dtype=dtype).reshape(value["shape"]).copy()
        return array[()] if value.get("scalar") else array

    def _remote(self, oid: int, type_name_: str, mro: tuple[str, ...]) -> Remote:
        remote = self._remotes.get(oid)
        if remote is None:
            remote = self._remotes[oid] = Remote(self, oid, type_name_, mro)
        return remote

    def _mirror(self, oid: int, record: dict, blobs) -> torch.Tensor:
        entry = self._shared.get((False, oid))
        if entry is not None:
            return entry.tensor
        if "dtype" not in record:
            raise BridgeError("an unknown tensor")
        data = _tensor_from(record["dtype"], record["shape"], _blob(blobs, record["blob"]))
        wants_grad = bool(record.get("requires_grad")) and _can_require_grad(data)
        if record.get("graph") and wants_grad:
            anchor = torch.zeros((), requires_grad=True)
            tensor = _PeerGraph.apply(self, oid, data, anchor)
        elif record.get("parameter"):
            tensor = torch.nn.Parameter(data, requires_grad=wants_grad)
        else:  # (requires_grad_ at all, even with False, is an error inside a torch.func transform)
            tensor = data.requires_grad_(True) if wants_grad else data
        grad = record.get("grad")
        if grad is not None and tensor.is_leaf and tensor.requires_grad:
            tensor.grad = _tensor_from(grad[0], grad[1], _blob(blobs, grad[2]))
        self._shared[(False, oid)] = Shared(tensor, Seen.of(tensor), False)
        self._mirror_oids[id(tensor)] = oid
        return tensor

    # -- sync: what changed in the tensors both sides hold ----------------------------------------------
    def _changes(self, blobs: list[bytes]) -> list:
        changes = []
        for (mine, oid), entry in self._shared.items():
            t = entry.tensor
            if not mine and t.grad_fn is not None:
                continue  # a graph mirror changes only through its owner
            seen = entry.seen
            grad = t.grad if t.is_leaf else None
            data_same, grad_same = _same(t.detach(), seen.data), _same(grad, seen.grad)
            if data_same and grad_same and t.requires_grad == seen.requires_grad:
                continue
            record = {"oid": oid, "mine": mine, "requires_grad": t.requires_grad}
            now = Seen.of(t)
            if not data_same:
                blobs.append(_raw(now.data))
                record.update(dtype=dtype_name(t.dtype), shape=list(t.shape), blob=len(blobs) - 1)
            if not grad_same:
                if now.grad is None:
                    record["grad"] = None
                else:
                    blobs.append(_raw(now.grad))
                    record["grad"] = [dtype_name(now.grad.dtype), list(now.grad.shape), len(blobs) - 1]
            entry.seen = now
            changes.append(record)
        return changes

    def _apply_changes(self, changes, blobs) -> None:
        if type(changes) is not list:
            raise BridgeError("malformed message")
        for record in changes:
            if type(record) is not dict:
                raise BridgeError("malformed message")
            entry = self._shared.get((not record.get("mine"), int(record.get("oid", -1))))
            if entry is None:
                raise BridgeError("a change to an unknown tensor")
            t = entry.tensor
            with torch.no_grad():
                if "blob" in record:
                    data = _tensor_from(record.get("dtype"), record.get("shape"), _blob(blobs, record["blob"]))
                    if data.shape == t.shape and data.dtype == t.dtype:
                        t.copy_(data)
                    else:
                        t.data = data.clone()
                wants = bool(record.get("requires_grad"))
                if t.is_leaf and wants != t.requires_grad and _can_require_grad(t):
                    t.requires_grad_(wants)
                if "grad" in record and t.is_leaf:
                    grad = record["grad"]
                    if grad is None:
                        t.grad = None
                    else:
                        value = _tensor_from(grad[0], grad[1], _blob(blobs, grad[2]))
                        if t.grad is not None and t.grad.shape == value.shape and t.grad.dtype == value.dtype:
                            t.grad.copy_(value)
                        else:
                            t.grad = value.clone()
            entry.seen = Seen.of(t)

    # -- messages -------------------------------------------------------------------------------------
    def _send(self, header: dict, **values) -> None:
        with _disable_current_modes():  # (a transform's tracing mode must not see the bridge's own work)
            self._send_now(header, values)

    def _send_now(self, header: dict, values: dict) -> None:
        blobs: list[bytes] = []
        header.update({key: self.encode(value, blobs) for key, value in values.items()})
        header.update(sync=self._changes(blobs), grad=torch.is_grad_enabled(),
                      inference=torch.is_inference_mode_enabled())
        if sum(map(len, blobs)) > self.policy.max_message_bytes:
            raise BridgeError(f"a message larger than {self.policy.max_message_bytes // MiB} MiB")
        try:
            send_frame(self.sock, header, blobs)
        except OSError as error:
            self.closed = True
            raise BridgeError(f"the connection broke ({error})") from None

    def _receive(self) -> tuple[dict, list[bytes]]:
        header, blobs = recv_frame(self.sock, self.policy.max_message_bytes, self.deadline)
        self._received += sum(map(len, blobs))
        if self._received > self.policy.max_session_bytes:
            raise BridgeError(f"more than {self.policy.max_session_bytes // MiB} MiB sent in one test")
        with _disable_current_modes():
            self._apply_changes(header.get("sync", []), blobs)
        return header, blobs

    def request(self, op: str, *args):
        """Ask the peer to do `op` with `args` and return its answer, serving its requests meanwhile."""
        if self.closed:
            raise BridgeError("the session with your notebook's kernel has ended")
        self._send({"kind": "request", "op": op}, args=list(args))
        while True:
            header, blobs = self._receive()
            kind = header.get("kind")
            if kind == "reply":
                return self.decode(header.get("value"), blobs)
            if kind == "error":
                bases = header.get("bases") if type(header.get("bases")) is list else []
                raise remote_error(str(header.get("type"))[:100], str(header.get("message"))[:4000], bases[:16])
            if kind == "request":
                self._answer(header, blobs)
                continue
            self.closed = True
            raise BridgeError("the other side ended the session" if kind == "close" else "malformed message")

    def call(self, target, args: tuple, kwargs: dict):
        """target(*args, **kwargs) on the peer's side.

        The kernel calling a function the test handed over with differentiable arguments makes one
        RemoteCall (see there); everything else is a plain call whose tensor arguments are synced.
        """
        if self.policy.trusts_peer:
            template, tensors = _template((list(args), kwargs))
            if any(_needs_graph_call(t) for t in tensors):
                anchor = torch.zeros((), requires_grad=torch.is_grad_enabled())
                return RemoteCall.apply(self, target, template, anchor, *tensors)
        result, updates = self.request("call", target, list(args), kwargs)
        for key, contents in updates:
            _update_in_place(args[key] if type(key) is int else kwargs[key], contents)
        return result

    def serve(self) -> None:
        """Answer requests until the peer closes the session."""
        while not self.closed:
            try:
                header, blobs = self._receive()
            except BridgeError:
                self.closed = True
                return
            if header.get("kind") != "request":
                self.closed = True
                return
            self._answer(header, blobs)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                send_frame(self.sock, {"kind": "close"}, [])
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- answering ----------------------------------------------------------------------------------
    def _answer(self, header: dict, blobs: list[bytes]) -> None:
        try:
            args = self.decode(header.get("args", {"$list": []}), blobs)
            if type(args) is not list:
                raise BridgeError("malformed message")
            mode = (torch.inference_mode() if header.get("inference") else
                    torch.enable_grad() if header.get("grad", True) else torch.no_grad())
            with mode:
                value = self._perform(str(header.get("op")), args)
        except BridgeTimeout:
            raise
        except StopIteration:
            self._send({"kind": "error", "type": "StopIteration", "message": ""})
            return
        except BaseException as error:  # noqa: BLE001 - every failure of the work is the caller's answer
            if self.closed:
                raise
            self._send({"kind": "error", "type": type(error).__name__, "message": str(error)[:4000],
                        "bases": [k.__name__ for k in type(error).__mro__[1:16]]})
            if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: after telling the peer
                raise
            return
        try:
            self._send({"kind": "reply"}, value=value)
        except Exception as error:  # noqa: BLE001 - a value that cannot cross is the caller's error to see
            if self.closed:
                raise
            self._send({"kind": "error", "type": type(error).__name__,
                        "message": f"the result could not be sent to the grader ({error})"[:4000]})

    def _perform(self, op: str, args: list):
        policy = self.policy
        match op, args:
            case "getattr", [obj, str(name)]:
                policy.check_attribute(obj, name)
                return getattr(obj, name)
            case "setattr", [obj, str(name), value]:
                policy.check_setattr(obj, name)
                setattr(obj, name, value)
                return None
            case "delattr", [obj, str(name)]:
                policy.check_setattr(obj, name)
                delattr(obj, name)
                return None
            case "call", [target, list(call_args), dict(kwargs)]:
                policy.check_call(target)
                result = target(*call_args, **kwargs)
                # Lists, dicts and sets crossed as copies: send back what the call left in them, for the
                # caller to put into its own (adam_step(params, state) keeps its moments in `state`).
                mutable = [*enumerate(call_args), *kwargs.items()]
                return result, [(key, value) for key, value in mutable if type(value) in (list, dict, set)]
            case "op", [obj, str(name), *rest]:
                policy.check_operation(obj, name)
                return _operate(obj, name, rest)
            case "iter", [obj]:
                return iter(obj)
            case "next", [obj]:
                return next(obj)
            case "repr", [obj]:
                return repr(obj)[:10_000]
            case "str", [obj]:
                return str(obj)[:10_000]
            case "deepcopy", [obj]:
                return copy.deepcopy(obj)
            case "copy", [obj]:
                return copy.copy(obj)
            case "module", [str(name)] if policy.trusts_peer:
                return importlib.import_module(name)
            case "global", [str(name)] if policy.trusts_peer:
                if name not in self.namespace:
                    raise NameError(f"name {name!r} is not defined")
                return self.namespace[name]
            case "graph_backward", [int(oid), torch.Tensor() as grad]:
                entry = self._shared.get((True, oid))
                if entry is None:
                    raise BridgeError("an unknown tensor")
                torch.autograd.backward(entry.tensor, grad.to(entry.tensor.dtype), retain_graph=True)
                return None
            case "graph_call", [target, template, list(tensors), list(wants)]:
                return self._graph_call(target, template, tensors, wants)
            case "vjp", [int(handle), torch.Tensor() as grad]:
                return self._vjp(handle, grad)
            case "jacobians", [int(handle)]:
                return self._compute_jacobians(handle)
        raise Refused(f"the request {op!r} with these arguments")

    # -- autograd across the boundary -----------------------------------------------------------------
    def _remote_graph_call(self, target, template, tensors) -> torch.Tensor:
        """(the caller's side of RemoteCall) the call's result, its graph kept by the owner."""
        handle, differentiable, data = self.request(
            "graph_call", target, template, [t.detach() for t in tensors],
            [bool(_can_require_grad(t)) for t in tensors])
        self._last_graph = (handle, differentiable)
        return data.clone()

    def _graph_call(self, target, template, tensors, wants):
        """(the owner's side) call target on fresh leaves and keep the graph for vjp/jacobians requests."""
        self.policy.check_call(target)
        leaves = [t.detach().clone().requires_grad_(True) if want and _can_require_grad(t) else t
                  for t, want in zip(tensors, wants, strict=True)]
        args, kwargs = _fill(template, leaves)
        with torch.enable_grad():
            out = target(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            raise TypeError("a function differentiated across the grader's boundary must return a tensor, "
                            f"got {type(out).__name__}")
        handle = len(self._graphs) + 1
        self._graphs[handle] = _Graph(out, [leaf if leaf.requires_grad else None for leaf in leaves])
        return handle, out.requires_grad, out.detach()

    def _vjp(self, handle: int, grad: torch.Tensor):
        record = self._graphs.get(handle)
        if record is None:
            raise BridgeError("an unknown graph")
        leaves = [leaf for leaf in record.leaves if leaf is not None]
        for leaf in leaves:
            leaf.grad = None
        if record.output.requires_grad:  # the owner's own parameters accumulate, as in one process
            torch.autograd.backward(record.output, grad.to(record.output.dtype), retain_graph=True)
        return [None if leaf is None else leaf.grad for leaf in record.leaves]

    def _compute_jacobians(self, handle: int):
        record = self._graphs.get(handle)
        if record is None:
            raise BridgeError("an unknown graph")
        if record.jacobians is None:
            with torch.enable_grad():  # (the request may come from inside the caller's no_grad)
                record.jacobians = self._jacobians_of(record)
        return record.jacobians

    @staticmethod
    def _jacobians_of(record: _Graph) -> list:
        """One Jacobian (outputs x inputs, flattened) per differentiable argument, by reverse mode, row by row."""
        out = record.output.reshape(-1)
        leaves = [leaf for leaf in record.leaves if leaf is not None]
        rows: list[list[torch.Tensor]] = [[] for _ in leaves]
        for i in range(out.numel() if out.requires_grad else 0):
            grads = torch.autograd.grad(out[i], leaves, retain_graph=True, allow_unused=True)
            for row, leaf, g in zip(rows, leaves, grads, strict=True):
                row.append(torch.zeros(leaf.numel(), dtype=out.dtype) if g is None else g.reshape(-1))
        jacobians = iter([torch.stack(row).to(out.dtype) if row else torch.zeros(out.numel(), leaf.numel(),
                                                                                 dtype=out.dtype)
                          for row, leaf in zip(rows, leaves, strict=True)])
        return [None if leaf is None else next(jacobians) for leaf in record.leaves]

    def _jacobians(self, handle: int) -> list:
        if handle not in self._jacobian_cache:
            self._jacobian_cache[handle] = self.request("jacobians", handle)
        return self._jacobian_cache[handle]


def _operate(obj, name: str, rest: list):
    """The operator `name` applied to obj (and rest), as Python would evaluate it."""
    if name not in OPERATORS:
        raise Refused(f"the operation {name!r}")
    match name:
        case "__len__":
            return len(obj)
        case "__bool__":
            return bool(obj)
        case "__contains__":
            return rest[0] in obj
        case "__round__":
            return round(obj, *rest)
        case "__float__" | "__int__" | "__index__" | "__complex__":
            return {"__float__": float, "__int__": int, "__index__": operator.index, "__complex__": complex}[name](obj)
        case "__getitem__":
            return obj[rest[0]]
        case "__setitem__":
            obj[rest[0]] = rest[1]
            return None
        case "__delitem__":
            del obj[rest[0]]
            return None
        case "__enter__" | "__exit__":
            return getattr(obj, name)(*rest)
    base = name.strip("_")
    if name in ("__neg__", "__pos__", "__abs__", "__invert__"):
        return getattr(operator, name)(obj)
    if name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        return getattr(operator, name)(obj, rest[0])
    if base.startswith("i") and hasattr(operator, f"__{name[2:]}"):  # obj op= other
        return getattr(operator, name)(obj, rest[0])
    if base.startswith("r") and hasattr(operator, f"__{base[1:]}__"):  # other op obj
        return getattr(operator, f"__{base[1:]}__")(rest[0], obj)
    return getattr(operator, name)(obj, rest[0])


def _update_in_place(container, contents) -> None:
    """Make the caller's list, dict or set hold what the callee's copy of it held after the call."""
    if type(container) is list and type(contents) is list:
        container[:] = contents
    elif type(container) in (dict, set) and type(contents) is type(container):
        container.clear()
        container.update(contents)


def _blob(blobs: list[bytes], index) -> bytes:
    if type(index) is not int or not 0 <= index < len(blobs):
        raise BridgeError("malformed message")
    return blobs[index]


_SLOT = "$slot"


def _template(value, tensors=None, depth=0):
    """`value` with every tensor replaced by a numbered slot, and the tensors in slot order."""
    tensors = [] if tensors is None else tensors
    if isinstance(value, torch.Tensor):
        tensors.append(value)
        return {_SLOT: len(tensors) - 1}, tensors
    if type(value) in (list, tuple) and depth < 8:
        filled = [_template(v, tensors, depth + 1)[0] for v in value]
        return (filled if type(value) is list else tuple(filled)), tensors
    if type(value) is dict and depth < 8:
        return {k: _template(v, tensors, depth + 1)[0] for k, v in value.items()}, tensors
    return value, tensors


def _fill(template, tensors):
    if type(template) is dict and set(template) == {_SLOT}:
        return tensors[template[_SLOT]]
    if type(template) is list:
        return [_fill(v, tensors) for v in template]
    if type(template) is tuple:
        return tuple(_fill(v, tensors) for v in template)
    if type(template) is dict:
        return {k: _fill(v, tensors) for k, v in template.items()}
    return template


# ------------------------------------------------------------------------------------------------
# the kernel's side


def warm_up(modules: list[str]) -> None:
    """Import what the course's notebooks import (run in the kernel before the notebook's clock starts)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - what cannot be imported is the notebook's business
            pass


def serve_kernel(path: str, namespace: dict | None = None) -> None:
    """Connect to the harness listening at `path` and do what it asks until it ends the session.

    The grader runs this in the student's kernel as a silent cell at each test cell, with the
    kernel's user namespace: the harness reads the student's globals as they are at that point.
    """
    if namespace is None:
        import __main__

        namespace = vars(__main__)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    endpoint = Endpoint(sock, Policy(), namespace=namespace)
    try:
        endpoint.serve()
    finally:
        with contextlib.suppress(OSError):
            sock.close()
