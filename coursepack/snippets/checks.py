"""Checks used by the test cells: each failure says what was expected and what came back."""
import importlib
import math

import torch


def _as_tensor(value, name):
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64)
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise AssertionError(f"{name}: expected a tensor or a number, got {type(value).__name__}") from None


def check_close(actual, expected, name, atol=1e-6, rtol=1e-5):
    """Assert `actual` equals `expected` within tolerance, whatever its float dtype or device."""
    got, want = _as_tensor(actual, name), _as_tensor(expected, name)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: expected shape {tuple(want.shape)}, got shape {tuple(got.shape)}")
    if not torch.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True):
        worst = (got - want).abs().nan_to_num(math.inf).max().item()
        raise AssertionError(f"{name}: expected\n{want}\ngot\n{got}\n(largest difference {worst:.3g})")


def check_true(condition, message):
    """Assert `condition`, failing with a sentence for the student rather than a bare AssertionError."""
    if not condition:
        raise AssertionError(message)


def check_raises(error, function, *args, name=None):
    """Assert that `function(*args)` raises `error` (e.g. ValueError for an index out of range)."""
    call = name or f"{getattr(function, '__name__', 'function')}{args}"
    try:
        function(*args)
    except error:
        return
    except Exception as other:  # noqa: BLE001 - the message names what was raised instead
        raise AssertionError(f"{call}: expected {error.__name__}, got {type(other).__name__}: {other}") from None
    raise AssertionError(f"{call}: expected {error.__name__}, but nothing was raised")


def check_unchanged(function, *args, name=None):
    """Call `function(*args)` and assert it left its tensor arguments as they were; return its result."""
    before = [a.clone() if isinstance(a, torch.Tensor) else None for a in args]
    result = function(*args)
    for position, (arg, copy) in enumerate(zip(args, before, strict=True)):
        if copy is not None and not torch.equal(arg, copy):
            call = name or getattr(function, "__name__", "function")
            raise AssertionError(f"{call} modified its argument {position + 1}: it must return a new tensor")
    return result


def student_module(name):
    """The module `name` as the student's code sees it (a test patches it to pretend to be another machine).

    Here that is the module itself; when the grader runs the tests outside the student's kernel, it is
    the kernel's copy of the module.
    """
    return importlib.import_module(name)
