"""Wrong and right answers for source/practical1/3_jacobians.ipynb (see ../mutation.py)."""
from mutation import Right, Wrong

CASES = [
    # ---- grad_f: f = cos(x) + z^3 - x^2 y --------------------------------------------------
    Wrong("grad_f: d/dx cos = +sin", fails={"test_grad_f"}, code="""
def grad_f(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([torch.sin(x) - 2 * x * y, -x**2, 3 * z**2])
"""),
    Wrong("grad_f: power rule without the factor 2", fails={"test_grad_f"}, code="""
def grad_f(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([-torch.sin(x) - x * y, -x**2, 3 * z**2])
"""),
    Wrong("grad_f: components in the order (z, y, x)", fails={"test_grad_f"}, code="""
def grad_f(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([3 * z**2, -x**2, -torch.sin(x) - 2 * x * y])
"""),
    Wrong("grad_f: df/dy = -2xy (differentiated w.r.t. x again)", fails={"test_grad_f"}, code="""
def grad_f(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([-torch.sin(x) - 2 * x * y, -2 * x * y, 3 * z**2])
"""),
    Wrong("grad_f: the sheet's 1x3 row vector", fails={"test_grad_f"}, code="""
def grad_f(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([-torch.sin(x) - 2 * x * y, -x**2, 3 * z**2]).reshape(1, 3)
"""),
    Wrong("grad_f: returns a Python list", fails={"test_grad_f"}, code="""
def grad_f(x, y, z):
    x, y, z = float(x), float(y), float(z)
    return [-math.sin(x) - 2 * x * y, -x**2, 3 * z**2]
"""),
    Right("grad_f: math module, torch.tensor in float64", code="""
def grad_f(x, y, z):
    x, y, z = float(x), float(y), float(z)
    return torch.tensor([-math.sin(x) - 2 * x * y, -x**2, 3 * z**2], dtype=torch.float64)
"""),
    Right("grad_f: autograd on the function itself", code="""
def grad_f(x, y, z):
    v = torch.tensor([float(x), float(y), float(z)], dtype=torch.float64)
    return torch.func.grad(lambda p: torch.cos(p[0]) + p[2] ** 3 - p[0] ** 2 * p[1])(v)
"""),
    # ---- grad_g: g = z^4 - sin(y^2 + x) ----------------------------------------------------
    Wrong("grad_g: chain rule without the inner factor 2y", fails={"test_grad_g"}, code="""
def grad_g(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([-torch.cos(y**2 + x), -torch.cos(y**2 + x), 4 * z**3])
"""),
    Wrong("grad_g: d/du (-sin u) = +cos u", fails={"test_grad_g"}, code="""
def grad_g(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([torch.cos(y**2 + x), 2 * y * torch.cos(y**2 + x), 4 * z**3])
"""),
    Wrong("grad_g: derivative of sin taken as -sin", fails={"test_grad_g"}, code="""
def grad_g(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([torch.sin(y**2 + x), 2 * y * torch.sin(y**2 + x), 4 * z**3])
"""),
    Wrong("grad_g: x and y components swapped", fails={"test_grad_g"}, code="""
def grad_g(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([-2 * y * torch.cos(y**2 + x), -torch.cos(y**2 + x), 4 * z**3])
"""),
    Wrong("grad_g: dg/dz = 4z^4", fails={"test_grad_g"}, code="""
def grad_g(x, y, z):
    x, y, z = (torch.as_tensor(v) for v in (x, y, z))
    return torch.stack([-torch.cos(y**2 + x), -2 * y * torch.cos(y**2 + x), 4 * z**4])
"""),
    Right("grad_g: math module, torch.tensor", code="""
def grad_g(x, y, z):
    x, y, z = float(x), float(y), float(z)
    c = math.cos(y * y + x)
    return torch.tensor([-c, -2 * y * c, 4 * z**3])
"""),
    Right("grad_g: float64 tensors and torch.pow", code="""
def grad_g(x, y, z):
    x, y, z = (torch.as_tensor(v, dtype=torch.float64) for v in (x, y, z))
    u = torch.pow(y, 2) + x
    return torch.stack([-torch.cos(u), -2 * y * torch.cos(u), 4 * torch.pow(z, 3)])
"""),
    # ---- hessian_f -------------------------------------------------------------------------
    Wrong("hessian_f: H_xx misses the -2y term", fails={"test_hessian_f"}, code="""
def hessian_f(x, y, z):
    x, y, z = float(x), float(y), float(z)
    return torch.tensor([[-math.cos(x), -2 * x, 0.0], [-2 * x, 0.0, 0.0], [0.0, 0.0, 6 * z]])
"""),
    Wrong("hessian_f: not symmetric (H_yx forgotten)", fails={"test_hessian_f"}, code="""
def hessian_f(x, y, z):
    x, y, z = float(x), float(y), float(z)
    return torch.tensor([[-math.cos(x) - 2 * y, -2 * x, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 6 * z]])
"""),
    Wrong("hessian_f: d/dx(-sin x) = +cos x", fails={"test_hessian_f"}, code="""
def hessian_f(x, y, z):
    x, y, z = float(x), float(y), float(z)
    return torch.tensor([[math.cos(x) - 2 * y, -2 * x, 0.0], [-2 * x, 0.0, 0.0], [0.0, 0.0, 6 * z]])
"""),
    Wrong("hessian_f: H_zz = 3z^2 (first derivative)", fails={"test_hessian_f"}, code="""
def hessian_f(x, y, z):
    x, y, z = float(x), float(y), float(z)
    return torch.tensor([[-math.cos(x) - 2 * y, -2 * x, 0.0], [-2 * x, 0.0, 0.0], [0.0, 0.0, 3 * z**2]])
"""),
    Wrong("hessian_f: mixed term -2y instead of -2x", fails={"test_hessian_f"}, code="""
def hessian_f(x, y, z):
    x, y, z = float(x), float(y), float(z)
    return torch.tensor([[-math.cos(x) - 2 * y, -2 * y, 0.0], [-2 * y, 0.0, 0.0], [0.0, 0.0, 6 * z]])
"""),
    Wrong("hessian_f: accepts Python floats only", fails={"test_hessian_f"}, code="""
def hessian_f(x, y, z):
    if not all(isinstance(v, float) for v in (x, y, z)):
        raise TypeError("hessian_f expects Python floats")
    return torch.tensor([[-math.cos(x) - 2 * y, -2 * x, 0.0], [-2 * x, 0.0, 0.0], [0.0, 0.0, 6 * z]])
"""),
    Right("hessian_f: zeros then fill, float64", code="""
def hessian_f(x, y, z):
    x, y, z = float(x), float(y), float(z)
    H = torch.zeros(3, 3, dtype=torch.float64)
    H[0, 0] = -math.cos(x) - 2 * y
    H[0, 1] = H[1, 0] = -2 * x
    H[2, 2] = 6 * z
    return H
"""),
    Right("hessian_f: torch.tensor from 0-d tensors", code="""
def hessian_f(x, y, z):
    x, y, z = (torch.as_tensor(v, dtype=torch.float32) for v in (x, y, z))
    return torch.tensor([[-torch.cos(x) - 2 * y, -2 * x, 0.0], [-2 * x, 0.0, 0.0], [0.0, 0.0, 6 * z]])
"""),
    # ---- helix -----------------------------------------------------------------------------
    Wrong("helix: 6 pi t instead of 6 t / pi", fails={"test_helix"}, code="""
def helix(t, s):
    t, s = torch.as_tensor(t), torch.as_tensor(s)
    return torch.stack([torch.sin(t) + s, torch.cos(t), 6 * math.pi * t])
"""),
    Wrong("helix: s added to the cos component", fails={"test_helix"}, code="""
def helix(t, s):
    t, s = torch.as_tensor(t), torch.as_tensor(s)
    return torch.stack([torch.sin(t), torch.cos(t) + s, 6 * t / math.pi])
"""),
    Wrong("helix: sin and cos swapped", fails={"test_helix"}, code="""
def helix(t, s):
    t, s = torch.as_tensor(t), torch.as_tensor(s)
    return torch.stack([torch.cos(t) + s, torch.sin(t), 6 * t / math.pi])
"""),
    Wrong("helix: t read in degrees", fails={"test_helix"}, code="""
def helix(t, s):
    t, s = torch.as_tensor(t), torch.as_tensor(s)
    r = torch.deg2rad(t)
    return torch.stack([torch.sin(r) + s, torch.cos(r), 6 * t / math.pi])
"""),
    Right("helix: math module, float64 tensor", code="""
def helix(t, s):
    t, s = float(t), float(s)
    return torch.tensor([math.sin(t) + s, math.cos(t), 6 * t / math.pi], dtype=torch.float64)
"""),
    Right("helix: torch.pi and torch.cat", code="""
def helix(t, s):
    t, s = torch.as_tensor(t).reshape(1), torch.as_tensor(s).reshape(1)
    return torch.cat([torch.sin(t) + s, torch.cos(t), 6 * t / torch.pi])
"""),
    # ---- helix_jacobian --------------------------------------------------------------------
    Wrong("helix_jacobian: transposed (2x3)", fails={"test_helix_jacobian"}, code="""
def helix_jacobian(t, s):
    t = float(t)
    return torch.tensor([[math.cos(t), -math.sin(t), 6 / math.pi], [1.0, 0.0, 0.0]])
"""),
    Wrong("helix_jacobian: d/dt cos t = +sin t", fails={"test_helix_jacobian"}, code="""
def helix_jacobian(t, s):
    t = float(t)
    return torch.tensor([[math.cos(t), 1.0], [math.sin(t), 0.0], [6 / math.pi, 0.0]])
"""),
    Wrong("helix_jacobian: d/ds (sin t + s) taken as 0", fails={"test_helix_jacobian"}, code="""
def helix_jacobian(t, s):
    t = float(t)
    return torch.tensor([[math.cos(t), 0.0], [-math.sin(t), 0.0], [6 / math.pi, 0.0]])
"""),
    Wrong("helix_jacobian: columns swapped (s first)", fails={"test_helix_jacobian"}, code="""
def helix_jacobian(t, s):
    t = float(t)
    return torch.tensor([[1.0, math.cos(t)], [0.0, -math.sin(t)], [0.0, 6 / math.pi]])
"""),
    Wrong("helix_jacobian: only the t-column (3x1)", fails={"test_helix_jacobian"}, code="""
def helix_jacobian(t, s):
    t = float(t)
    return torch.tensor([[math.cos(t)], [-math.sin(t)], [6 / math.pi]])
"""),
    Right("helix_jacobian: rows stacked, float64", code="""
def helix_jacobian(t, s):
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.stack([torch.stack([torch.cos(t), torch.ones_like(t)]),
                        torch.stack([-torch.sin(t), torch.zeros_like(t)]),
                        torch.stack([torch.full_like(t, 6 / math.pi), torch.zeros_like(t)])])
"""),
    Right("helix_jacobian: nested torch.tensor", code="""
def helix_jacobian(t, s):
    t = float(t)
    return torch.tensor([[math.cos(t), 1], [-math.sin(t), 0], [6 / math.pi, 0]], dtype=torch.float32)
"""),
    # ---- numerical_jacobian ----------------------------------------------------------------
    Wrong("numerical_jacobian: forward difference", fails={"test_numerical_jacobian"}, code="""
def numerical_jacobian(f, x, h=1e-6):
    fx = f(x).reshape(-1)
    columns = []
    for j in range(x.numel()):
        step = torch.zeros_like(x)
        step[j] = h
        columns.append((f(x + step).reshape(-1) - fx) / h)
    return torch.stack(columns, dim=1)
"""),
    Wrong("numerical_jacobian: central difference divided by h", fails={"test_numerical_jacobian"}, code="""
def numerical_jacobian(f, x, h=1e-6):
    columns = []
    for j in range(x.numel()):
        step = torch.zeros_like(x)
        step[j] = h
        columns.append((f(x + step) - f(x - step)).reshape(-1) / h)
    return torch.stack(columns, dim=1)
"""),
    Wrong("numerical_jacobian: transposed (n x m)", fails={"test_numerical_jacobian"}, code="""
def numerical_jacobian(f, x, h=1e-6):
    columns = []
    for j in range(x.numel()):
        step = torch.zeros_like(x)
        step[j] = h
        columns.append((f(x + step) - f(x - step)).reshape(-1) / (2 * h))
    return torch.stack(columns, dim=0)
"""),
    Wrong("numerical_jacobian: ignores the h argument", fails={"test_numerical_jacobian"}, code="""
def numerical_jacobian(f, x, h=1e-6):
    columns = []
    for j in range(x.numel()):
        step = torch.zeros_like(x)
        step[j] = 1e-6
        columns.append((f(x + step) - f(x - step)).reshape(-1) / 2e-6)
    return torch.stack(columns, dim=1)
"""),
    Wrong("numerical_jacobian: computes in float32", fails={"test_numerical_jacobian"}, code="""
def numerical_jacobian(f, x, h=1e-6):
    x = x.float()
    columns = []
    for j in range(x.numel()):
        step = torch.zeros_like(x)
        step[j] = h
        columns.append((f(x + step) - f(x - step)).reshape(-1) / (2 * h))
    return torch.stack(columns, dim=1)
"""),
    Wrong("numerical_jacobian: a scalar f gives a length-n vector, not 1 x n",
          fails={"test_numerical_jacobian"}, code="""
def numerical_jacobian(f, x, h=1e-6):
    columns = []
    for j in range(x.numel()):
        step = torch.zeros_like(x)
        step[j] = h
        columns.append((f(x + step) - f(x - step)) / (2 * h))
    return torch.stack(columns, dim=-1)
"""),
    Wrong("numerical_jacobian: perturbs x in place and never restores it", fails={"test_numerical_jacobian"}, code="""
def numerical_jacobian(f, x, h=1e-6):
    columns = []
    for j in range(x.numel()):
        x[j] += h
        plus = f(x).reshape(-1)
        x[j] -= 2 * h
        columns.append((plus - f(x).reshape(-1)) / (2 * h))
    return torch.stack(columns, dim=1)
"""),
    Right("numerical_jacobian: basis rows of h * eye, preallocated J", code="""
def numerical_jacobian(f, x, h=1e-6):
    steps = h * torch.eye(x.numel(), dtype=x.dtype)
    m = torch.as_tensor(f(x)).numel()
    J = torch.empty(m, x.numel(), dtype=x.dtype)
    for j, step in enumerate(steps):
        J[:, j] = (torch.atleast_1d(f(x + step)) - torch.atleast_1d(f(x - step))) / (2 * h)
    return J
"""),
    Right("numerical_jacobian: clone, set and restore a copy", code="""
def numerical_jacobian(f, x, h=1e-6):
    columns = []
    for j in range(len(x)):
        xp, xm = x.clone(), x.clone()
        xp[j] = x[j] + h
        xm[j] = x[j] - h
        columns.append(((f(xp) - f(xm)) / (2 * h)).flatten())
    return torch.stack(columns).T
"""),
    Right("numerical_jacobian: shifts x in place and restores each entry exactly", code="""
def numerical_jacobian(f, x, h=1e-6):
    columns = []
    for j in range(x.numel()):
        saved = x[j].item()
        x[j] = saved + h
        plus = f(x).reshape(-1)
        x[j] = saved - h
        minus = f(x).reshape(-1)
        x[j] = saved
        columns.append((plus - minus) / (2 * h))
    return torch.stack(columns, dim=1)
"""),
    # ---- jacobian_forward ------------------------------------------------------------------
    Wrong("jacobian_forward: columns stacked as rows (transposed)", fails={"test_jacobian_forward"}, code="""
def jacobian_forward(f, x):
    basis = torch.eye(x.numel(), dtype=x.dtype)
    columns = [torch.func.jvp(f, (x,), (e,))[1] for e in basis]
    return torch.stack(columns, dim=0), len(columns)
"""),
    Wrong("jacobian_forward: reports m sweeps", fails={"test_jacobian_forward"}, code="""
def jacobian_forward(f, x):
    basis = torch.eye(x.numel(), dtype=x.dtype)
    columns = [torch.func.jvp(f, (x,), (e,))[1] for e in basis]
    J = torch.stack(columns, dim=1)
    return J, J.shape[0]
"""),
    Wrong("jacobian_forward: one sweep with a tangent of ones", fails={"test_jacobian_forward"}, code="""
def jacobian_forward(f, x):
    _, Jv = torch.func.jvp(f, (x,), (torch.ones_like(x),))
    return Jv.unsqueeze(1).expand(-1, x.numel()), x.numel()
"""),
    Wrong("jacobian_forward: jacfwd, reported as 1 sweep", fails={"test_jacobian_forward"}, code="""
def jacobian_forward(f, x):
    return torch.func.jacfwd(f)(x), 1
"""),
    Wrong("jacobian_forward: finite differences in float32 instead of JVPs", fails={"test_jacobian_forward"}, code="""
def jacobian_forward(f, x):
    x32, h = x.float(), 1e-3
    columns = []
    for j in range(x.numel()):
        e = torch.zeros_like(x32)
        e[j] = h
        columns.append((f(x32 + e) - f(x32 - e)) / (2 * h))
    return torch.stack(columns, dim=1), x.numel()
"""),
    Wrong("jacobian_forward: reuses x as the tangent buffer (x is destroyed)", fails={"test_jacobian_forward"}, code="""
def jacobian_forward(f, x):
    point = x.clone()
    columns = []
    for j in range(x.numel()):
        x.zero_()
        x[j] = 1.0
        columns.append(torch.func.jvp(f, (point,), (x.clone(),))[1])
    return torch.stack(columns, dim=1), len(columns)
"""),
    Right("jacobian_forward: dual numbers with torch.autograd.forward_ad", code="""
import torch.autograd.forward_ad as fwAD


def jacobian_forward(f, x):
    columns = []
    with fwAD.dual_level():
        for j in range(x.numel()):
            tangent = torch.zeros_like(x)
            tangent[j] = 1.0
            columns.append(fwAD.unpack_dual(f(fwAD.make_dual(x, tangent))).tangent)
    return torch.stack(columns, dim=1), len(columns)
"""),
    Right("jacobian_forward: torch.autograd.functional.jvp", code="""
def jacobian_forward(f, x):
    n = x.numel()
    columns = [torch.autograd.functional.jvp(f, x, torch.eye(n, dtype=x.dtype)[j])[1] for j in range(n)]
    return torch.stack(columns, dim=1), n
"""),
    Right("jacobian_forward: jacfwd (the n sweeps vmapped)", code="""
def jacobian_forward(f, x):
    return torch.func.jacfwd(f)(x), x.numel()
"""),
    # ---- jacobian_reverse ------------------------------------------------------------------
    Wrong("jacobian_reverse: always reports n sweeps", fails={"test_jacobian_reverse"}, code="""
def jacobian_reverse(f, x):
    out, pullback = torch.func.vjp(f, x)
    rows = [pullback(e)[0] for e in torch.eye(out.numel(), dtype=out.dtype)]
    return torch.stack(rows), x.numel()
"""),
    Wrong("jacobian_reverse: rows stacked as columns (transposed)", fails={"test_jacobian_reverse"}, code="""
def jacobian_reverse(f, x):
    out, pullback = torch.func.vjp(f, x)
    rows = [pullback(e)[0] for e in torch.eye(out.numel(), dtype=out.dtype)]
    return torch.stack(rows, dim=1), len(rows)
"""),
    Wrong("jacobian_reverse: cotangent of ones (sum of the rows)", fails={"test_jacobian_reverse"}, code="""
def jacobian_reverse(f, x):
    out, pullback = torch.func.vjp(f, x)
    (row,) = pullback(torch.ones_like(out))
    return row.expand(out.numel(), -1), out.numel()
"""),
    Wrong("jacobian_reverse: rows in reverse order", fails={"test_jacobian_reverse"}, code="""
def jacobian_reverse(f, x):
    out, pullback = torch.func.vjp(f, x)
    rows = [pullback(e)[0] for e in torch.eye(out.numel(), dtype=out.dtype).flip(0)]
    return torch.stack(rows), len(rows)
"""),
    Wrong("jacobian_reverse: jacrev, reported as 1 sweep", fails={"test_jacobian_reverse"}, code="""
def jacobian_reverse(f, x):
    return torch.func.jacrev(f)(x), 1
"""),
    Wrong("jacobian_reverse: reuses x as the row buffer (x is overwritten)", fails={"test_jacobian_reverse"}, code="""
def jacobian_reverse(f, x):
    out, pullback = torch.func.vjp(f, x.clone())
    rows = []
    for e in torch.eye(out.numel(), dtype=out.dtype):
        x.copy_(pullback(e)[0])
        rows.append(x.clone())
    return torch.stack(rows), len(rows)
"""),
    Right("jacobian_reverse: torch.autograd.grad with retain_graph", code="""
def jacobian_reverse(f, x):
    leaf = x.detach().requires_grad_(True)
    out = f(leaf)
    rows = []
    for i in range(out.numel()):
        (row,) = torch.autograd.grad(out[i], leaf, retain_graph=True)
        rows.append(row)
    return torch.stack(rows), len(rows)
"""),
    Right("jacobian_reverse: torch.autograd.functional.vjp", code="""
def jacobian_reverse(f, x):
    m = f(x).numel()
    rows = [torch.autograd.functional.vjp(f, x, torch.eye(m, dtype=x.dtype)[i])[1] for i in range(m)]
    return torch.stack(rows), m
"""),
    Right("jacobian_reverse: jacrev (the m sweeps vmapped)", code="""
def jacobian_reverse(f, x):
    J = torch.func.jacrev(f)(x)
    return J, J.shape[0]
"""),
    # ---- jacobian_memory_bytes -------------------------------------------------------------
    Wrong("jacobian_memory_bytes: 1 byte per entry (the sheet's 1 TB)", fails={"test_jacobian_memory_bytes"}, code="""
def jacobian_memory_bytes(n_in, n_out, dtype=torch.float32):
    return n_in * n_out
"""),
    Wrong("jacobian_memory_bytes: always 4 bytes (ignores dtype)", fails={"test_jacobian_memory_bytes"}, code="""
def jacobian_memory_bytes(n_in, n_out, dtype=torch.float32):
    return n_in * n_out * 4
"""),
    Wrong("jacobian_memory_bytes: answers in TB", fails={"test_jacobian_memory_bytes"}, code="""
def jacobian_memory_bytes(n_in, n_out, dtype=torch.float32):
    return n_in * n_out * dtype.itemsize / 1e12
"""),
    Wrong("jacobian_memory_bytes: bits instead of bytes", fails={"test_jacobian_memory_bytes"}, code="""
def jacobian_memory_bytes(n_in, n_out, dtype=torch.float32):
    return n_in * n_out * torch.finfo(dtype).bits
"""),
    Wrong("jacobian_memory_bytes: torch.finfo only (fails for integer dtypes)",
          fails={"test_jacobian_memory_bytes"}, code="""
def jacobian_memory_bytes(n_in, n_out, dtype=torch.float32):
    return n_in * n_out * torch.finfo(dtype).bits // 8
"""),
    Wrong("jacobian_memory_bytes: square n_in x n_in", fails={"test_jacobian_memory_bytes"}, code="""
def jacobian_memory_bytes(n_in, n_out, dtype=torch.float32):
    return n_in * n_in * dtype.itemsize
"""),
    Right("jacobian_memory_bytes: dtype.itemsize", code="""
def jacobian_memory_bytes(n_in, n_out, dtype=torch.float32):
    return n_in * n_out * dtype.itemsize
"""),
    Right("jacobian_memory_bytes: finfo or iinfo bits, as a float", code="""
def jacobian_memory_bytes(n_in, n_out, dtype=torch.float32):
    info = torch.finfo(dtype) if dtype.is_floating_point else torch.iinfo(dtype)
    return float(n_in * n_out * info.bits // 8)
"""),
]
