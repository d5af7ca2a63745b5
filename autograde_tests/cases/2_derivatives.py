"""Wrong and right answers for 2_derivatives.ipynb: finite differences, activation derivatives, the chain rule."""
from mutation import Right, Wrong

CASES = [
    # ---------------------------------------------------------------- forward_difference
    Wrong("forward: backward difference instead", fails={"test_forward_difference"}, code="""
def forward_difference(f, x, h=1e-5):
    return (f(x) - f(x - h)) / h
"""),
    Wrong("forward: sign error", fails={"test_forward_difference"}, code="""
def forward_difference(f, x, h=1e-5):
    return (f(x) - f(x + h)) / h
"""),
    Wrong("forward: ignores the h argument", fails={"test_forward_difference"}, code="""
def forward_difference(f, x, h=1e-5):
    step = 1e-5
    return (f(x + step) - f(x)) / step
"""),
    Wrong("forward: default h = 1e-8 (the float64 optimum) instead of 1e-5", fails={"test_forward_difference"},
          code="""
def forward_difference(f, x, h=1e-8):
    return (f(x + h) - f(x)) / h
"""),
    Wrong("forward: steps x in place (x += h)", fails={"test_forward_difference"}, code="""
def forward_difference(f, x, h=1e-5):
    fx = f(x)
    x += h
    return (f(x) - fx) / h
"""),
    Wrong("forward: divides by 2h", fails={"test_forward_difference"}, code="""
def forward_difference(f, x, h=1e-5):
    return (f(x + h) - f(x)) / (2 * h)
"""),
    Wrong("forward: rounds x to float32 (loses float64 precision)", fails={"test_forward_difference"}, code="""
def forward_difference(f, x, h=1e-5):
    x = torch.as_tensor(x, dtype=torch.float32)
    return (f(x + h) - f(x)) / h
"""),
    Right("forward: as a central difference of half the step around x + h/2", code="""
def forward_difference(f, x, h=1e-5):
    midpoint = x + h / 2
    return (f(midpoint + h / 2) - f(midpoint - h / 2)) / h
"""),
    Right("forward: computes in float64 whatever comes in", code="""
def forward_difference(f, x, h=1e-5):
    x = torch.as_tensor(x, dtype=torch.float64)
    return (f(x + h) - f(x)) / h
"""),
    Right("forward: multiplies by 1 / h", code="""
def forward_difference(f, x, h=1e-5):
    return (f(x + h) - f(x)) * (1 / h)
"""),
    # ---------------------------------------------------------------- central_difference
    Wrong("central: divided by h instead of 2h", fails={"test_central_difference"}, code="""
def central_difference(f, x, h=1e-5):
    return (f(x + h) - f(x - h)) / h
"""),
    Wrong("central: a forward difference passed off as central", fails={"test_central_difference"}, code="""
def central_difference(f, x, h=1e-5):
    return (f(x + h) - f(x)) / h
"""),
    Wrong("central: sign error", fails={"test_central_difference"}, code="""
def central_difference(f, x, h=1e-5):
    return (f(x - h) - f(x + h)) / (2 * h)
"""),
    Wrong("central: ignores the h argument", fails={"test_central_difference"}, code="""
def central_difference(f, x, h=1e-5):
    return (f(x + 1e-5) - f(x - 1e-5)) / 2e-5
"""),
    Wrong("central: half steps x ± h/2", fails={"test_central_difference"}, code="""
def central_difference(f, x, h=1e-5):
    return (f(x + h / 2) - f(x - h / 2)) / h
"""),
    Wrong("central: missing parentheses, f(x+h) - f(x-h)/(2h)", fails={"test_central_difference"}, code="""
def central_difference(f, x, h=1e-5):
    return f(x + h) - f(x - h) / (2 * h)
"""),
    Wrong("central: default h = 1e-3", fails={"test_central_difference"}, code="""
def central_difference(f, x, h=1e-3):
    return (f(x + h) - f(x - h)) / (2 * h)
"""),
    Right("central: mean of the forward and backward differences", code="""
def central_difference(f, x, h=1e-5):
    return 0.5 * ((f(x + h) - f(x)) / h + (f(x) - f(x - h)) / h)
"""),
    Right("central: a forward difference of step 2h from x - h", code="""
def central_difference(f, x, h=1e-5):
    return forward_difference(f, x - h, 2 * h)
"""),
    Right("central: divides by h, then by 2", code="""
def central_difference(f, x, h=1e-5):
    return (f(x + h) - f(x - h)) / h / 2
"""),
    # ---------------------------------------------------------------- relu_grad
    Wrong("relu: returns ReLU(x) itself", fails={"test_relu_grad"}, code="""
def relu_grad(x):
    return torch.clamp(torch.as_tensor(x), min=0)
"""),
    Wrong("relu: 1 for negative x (comparison flipped)", fails={"test_relu_grad"}, code="""
def relu_grad(x):
    return (torch.as_tensor(x) < 0).float()
"""),
    Wrong("relu: sign(x), the derivative of |x|", fails={"test_relu_grad"}, code="""
def relu_grad(x):
    return torch.sign(torch.as_tensor(x))
"""),
    Wrong("relu: x / |x| clamped, nan at 0", fails={"test_relu_grad"}, code="""
def relu_grad(x):
    x = torch.as_tensor(x)
    return (x / x.abs()).clamp(min=0)
"""),
    Wrong("relu: a central-difference estimate (wrong within h of the kink)", fails={"test_relu_grad"}, code="""
def relu_grad(x):
    return central_difference(torch.relu, torch.as_tensor(x))
"""),
    Wrong("relu: 2 at x = 0 (not a subgradient)", fails={"test_relu_grad"}, code="""
def relu_grad(x):
    x = torch.as_tensor(x)
    return (x > 0).float() + 2 * (x == 0).float()
"""),
    Right("relu: the sheet's convention, 1 at 0", code="""
def relu_grad(x):
    return (torch.as_tensor(x) >= 0).float()
"""),
    Right("relu: a bool tensor", code="""
def relu_grad(x):
    return torch.as_tensor(x) > 0
"""),
    Right("relu: heaviside with 1/2 at 0", code="""
def relu_grad(x):
    x = torch.as_tensor(x)
    return torch.heaviside(x, torch.tensor(0.5, dtype=x.dtype))
"""),
    Right("relu: autograd of torch.relu", code="""
def relu_grad(x):
    leaf = torch.as_tensor(x).detach().clone().requires_grad_(True)
    torch.relu(leaf).sum().backward()
    return leaf.grad
"""),
    # ---------------------------------------------------------------- tanh_grad
    Wrong("tanh: 1 - tanh(x), missing square", fails={"test_tanh_grad"}, code="""
def tanh_grad(x):
    return 1 - torch.tanh(torch.as_tensor(x))
"""),
    Wrong("tanh: 1 - x**2, the output formula applied to the input", fails={"test_tanh_grad"}, code="""
def tanh_grad(x):
    return 1 - torch.as_tensor(x) ** 2
"""),
    Wrong("tanh: tanh(x)**2 - 1, sign error", fails={"test_tanh_grad"}, code="""
def tanh_grad(x):
    return torch.tanh(torch.as_tensor(x)) ** 2 - 1
"""),
    Wrong("tanh: sech(x) instead of sech(x)**2", fails={"test_tanh_grad"}, code="""
def tanh_grad(x):
    return 1 / torch.cosh(torch.as_tensor(x))
"""),
    Wrong("tanh: tanh built from exp, nan for large |x|", fails={"test_tanh_grad"}, code="""
def tanh_grad(x):
    x = torch.as_tensor(x)
    t = (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))
    return 1 - t**2
"""),
    Wrong("tanh: tanh as (e^2x - 1) / (e^2x + 1), nan at x = 1000", fails={"test_tanh_grad"}, code="""
def tanh_grad(x):
    e = torch.exp(2 * torch.as_tensor(x))
    return 1 - ((e - 1) / (e + 1)) ** 2
"""),
    Right("tanh: 1 / cosh(x)**2", code="""
def tanh_grad(x):
    return 1 / torch.cosh(torch.as_tensor(x)) ** 2
"""),
    Right("tanh: 4 sigma(2x) sigma(-2x) in float64", code="""
def tanh_grad(x):
    x = torch.as_tensor(x, dtype=torch.float64)
    return 4 * torch.sigmoid(2 * x) * torch.sigmoid(-2 * x)
"""),
    Right("tanh: autograd of torch.tanh", code="""
def tanh_grad(x):
    leaf = torch.as_tensor(x).detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.tanh(leaf).sum(), leaf)
    return grad
"""),
    # ---------------------------------------------------------------- sigmoid_grad
    Wrong("sigmoid: sigma (1 + sigma)", fails={"test_sigmoid_grad"}, code="""
def sigmoid_grad(x):
    s = torch.sigmoid(torch.as_tensor(x))
    return s * (1 + s)
"""),
    Wrong("sigmoid: sigma**2", fails={"test_sigmoid_grad"}, code="""
def sigmoid_grad(x):
    return torch.sigmoid(torch.as_tensor(x)) ** 2
"""),
    Wrong("sigmoid: x (1 - x), the output formula applied to the input", fails={"test_sigmoid_grad"}, code="""
def sigmoid_grad(x):
    x = torch.as_tensor(x)
    return x * (1 - x)
"""),
    Wrong("sigmoid: -sigma (1 - sigma), sign error", fails={"test_sigmoid_grad"}, code="""
def sigmoid_grad(x):
    s = torch.sigmoid(torch.as_tensor(x))
    return -s * (1 - s)
"""),
    Wrong("sigmoid: exp(-x) / (1 + exp(-x))**2, nan at x = -1000", fails={"test_sigmoid_grad"}, code="""
def sigmoid_grad(x):
    e = torch.exp(-torch.as_tensor(x))
    return e / (1 + e) ** 2
"""),
    Right("sigmoid: sigma(x) sigma(-x)", code="""
def sigmoid_grad(x):
    x = torch.as_tensor(x)
    return torch.sigmoid(x) * torch.sigmoid(-x)
"""),
    Right("sigmoid: stable exp(-|x|) / (1 + exp(-|x|))**2 in float64", code="""
def sigmoid_grad(x):
    e = torch.exp(-torch.as_tensor(x, dtype=torch.float64).abs())
    return e / (1 + e) ** 2
"""),
    Right("sigmoid: exp(-x) / (1 + exp(-x))**2 with the nan at -1000 replaced by its limit 0", code="""
def sigmoid_grad(x):
    e = torch.exp(-torch.as_tensor(x))
    return torch.nan_to_num(e / (1 + e) ** 2, nan=0.0)
"""),
    Right("sigmoid: autograd of torch.sigmoid", code="""
def sigmoid_grad(x):
    leaf = torch.as_tensor(x).detach().clone().requires_grad_(True)
    torch.sigmoid(leaf).sum().backward()
    return leaf.grad
"""),
    # ---------------------------------------------------------------- sin_grad
    Wrong("sin: -cos(x)", fails={"test_sin_grad"}, code="""
def sin_grad(x):
    return -torch.cos(torch.as_tensor(x))
"""),
    Wrong("sin: sin(x)", fails={"test_sin_grad"}, code="""
def sin_grad(x):
    return torch.sin(torch.as_tensor(x))
"""),
    Wrong("sin: -sin(x), the derivative of cos", fails={"test_sin_grad"}, code="""
def sin_grad(x):
    return -torch.sin(torch.as_tensor(x))
"""),
    Right("sin: sin(x + pi/2)", code="""
def sin_grad(x):
    return torch.sin(torch.as_tensor(x) + math.pi / 2)
"""),
    Right("sin: autograd of torch.sin", code="""
def sin_grad(x):
    leaf = torch.as_tensor(x).detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.sin(leaf).sum(), leaf)
    return grad
"""),
    # ---------------------------------------------------------------- sin_x2_grad
    Wrong("sin(x^2): cos(x^2), missing the chain factor 2x", fails={"test_sin_x2_grad"}, code="""
def sin_x2_grad(x):
    return torch.cos(torch.as_tensor(x) ** 2)
"""),
    Wrong("sin(x^2): x cos(x^2), missing the 2 of the power rule", fails={"test_sin_x2_grad"}, code="""
def sin_x2_grad(x):
    x = torch.as_tensor(x)
    return x * torch.cos(x**2)
"""),
    Wrong("sin(x^2): 2x cos(x), outer derivative not evaluated at x^2", fails={"test_sin_x2_grad"}, code="""
def sin_x2_grad(x):
    x = torch.as_tensor(x)
    return 2 * x * torch.cos(x)
"""),
    Wrong("sin(x^2): 2x cos(x)**2, cos^2 confused with cos(x^2)", fails={"test_sin_x2_grad"}, code="""
def sin_x2_grad(x):
    x = torch.as_tensor(x)
    return 2 * x * torch.cos(x) ** 2
"""),
    Wrong("sin(x^2): -2x cos(x^2), sign error", fails={"test_sin_x2_grad"}, code="""
def sin_x2_grad(x):
    x = torch.as_tensor(x)
    return -2 * x * torch.cos(x**2)
"""),
    Right("sin(x^2): autograd of sin(x**2)", code="""
def sin_x2_grad(x):
    leaf = torch.as_tensor(x).detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.sin(leaf**2).sum(), leaf)
    return grad
"""),
    Right("sin(x^2): sympy's derivative, lambdified to torch", code="""
_x_symbol = sp.Symbol("x")
_sympy_grad = sp.lambdify(_x_symbol, sp.diff(sp.sin(_x_symbol**2), _x_symbol), modules="torch")


def sin_x2_grad(x):
    return _sympy_grad(torch.as_tensor(x))
"""),
    Right("sin(x^2): 2x sin(x^2 + pi/2)", code="""
def sin_x2_grad(x):
    x = torch.as_tensor(x)
    return 2 * x * torch.sin(x**2 + math.pi / 2)
"""),
]
