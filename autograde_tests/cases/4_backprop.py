"""Wrong and right answers for 4_backprop.ipynb: manual backprop, Listing 1 fixed, the Value engine."""
from mutation import Right, Wrong

BOTH = {"test_Network", "test_train_network"}  # train_network builds its model with the student's Network
# Value is graded by four test cells, each on one part of the engine.
FORWARD, LOCAL, SHARED, ORDER = "test_Value_forward", "test_Value_local_grads", "test_Value_shared", "test_Value_order"

CASES = [
    # ---------------------------------------------------------------- linear_l2_loss
    Wrong("loss: mean instead of sum", fails={"test_linear_l2_loss"}, code="""
def linear_l2_loss(W, b, x, t):
    return ((W @ x + b - t) ** 2).mean()
"""),
    Wrong("loss: the norm, not its square", fails={"test_linear_l2_loss"}, code="""
def linear_l2_loss(W, b, x, t):
    return torch.linalg.vector_norm(W @ x + b - t)
"""),
    Wrong("loss: x @ W (W used transposed)", fails={"test_linear_l2_loss"}, code="""
def linear_l2_loss(W, b, x, t):
    return ((x @ W + b - t) ** 2).sum()
"""),
    Wrong("loss: bias subtracted", fails={"test_linear_l2_loss"}, code="""
def linear_l2_loss(W, b, x, t):
    return ((W @ x - b - t) ** 2).sum()
"""),
    Wrong("loss: sum of absolute values (L1)", fails={"test_linear_l2_loss"}, code="""
def linear_l2_loss(W, b, x, t):
    return (W @ x + b - t).abs().sum()
"""),
    Wrong("loss: returns a Python float (.item()), so backward() is impossible", fails={"test_linear_l2_loss"},
          code="""
def linear_l2_loss(W, b, x, t):
    return ((W @ x + b - t) ** 2).sum().item()
"""),
    Right("loss: squared vector_norm", code="""
def linear_l2_loss(W, b, x, t):
    return torch.linalg.vector_norm(W @ x + b - t) ** 2
"""),
    Right("loss: dot product in float64 whatever comes in", code="""
def linear_l2_loss(W, b, x, t):
    r = torch.mv(W.double(), x.double()) + b.double() - t.double()
    return torch.dot(r, r)
"""),
    Right("loss: mse_loss with reduction='sum'", code="""
def linear_l2_loss(W, b, x, t):
    return torch.nn.functional.mse_loss(torch.matmul(W, x) + b, t, reduction="sum")
"""),
    # ---------------------------------------------------------------- linear_l2_grads
    Wrong("grads: factor 2 missing", fails={"test_linear_l2_grads"}, code="""
def linear_l2_grads(W, b, x, t):
    r = W @ x + b - t
    return torch.outer(r, x), r
"""),
    Wrong("grads: dL/dW transposed (2 x r^T)", fails={"test_linear_l2_grads"}, code="""
def linear_l2_grads(W, b, x, t):
    r = W @ x + b - t
    return 2 * torch.outer(x, r), 2 * r
"""),
    Wrong("grads: opposite sign (r = t - W x - b)", fails={"test_linear_l2_grads"}, code="""
def linear_l2_grads(W, b, x, t):
    r = t - W @ x - b
    return 2 * torch.outer(r, x), 2 * r
"""),
    Wrong("grads: the mean's factor 2/m", fails={"test_linear_l2_grads"}, code="""
def linear_l2_grads(W, b, x, t):
    r = W @ x + b - t
    return 2 * torch.outer(r, x) / len(r), 2 * r / len(r)
"""),
    Wrong("grads: dL/db as an (m, 1) column", fails={"test_linear_l2_grads"}, code="""
def linear_l2_grads(W, b, x, t):
    r = (W @ x + b - t)[:, None]
    return 2 * r * x[None, :], 2 * r
"""),
    Wrong("grads: autograd instead of the derivation", fails={"test_linear_l2_grads"}, code="""
def linear_l2_grads(W, b, x, t):
    W, b = W.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    loss = ((W @ x + b - t) ** 2).sum()
    return torch.autograd.grad(loss, (W, b))
"""),
    Right("grads: broadcasting in float64", code="""
def linear_l2_grads(W, b, x, t):
    r = W.double() @ x.double() + b.double() - t.double()
    return 2 * r[:, None] * x.double()[None, :], 2 * r
"""),
    Right("grads: einsum and addmv, returned as a list", code="""
def linear_l2_grads(W, b, x, t):
    g = 2 * torch.addmv(b - t, W, x)
    return [torch.einsum("i,j->ij", g, x), g]
"""),
    # ---------------------------------------------------------------- Network
    Wrong("Network: the sheet's elementwise W * x", fails=BOTH, code="""
class Network:
    def __init__(self, n_in, n_out):
        self.W = torch.randn(n_out, n_in) * 0.01
        self.b = torch.zeros(n_out)
        self.W.requires_grad = True
        self.b.requires_grad = True

    def forward(self, x):
        return self.W * x + self.b
"""),
    Wrong("Network: W shaped (n_in, n_out) with x @ W", fails=BOTH, code="""
class Network:
    def __init__(self, n_in, n_out):
        self.W = torch.randn(n_in, n_out) * 0.01
        self.b = torch.zeros(n_out)
        self.W.requires_grad = True
        self.b.requires_grad = True

    def forward(self, x):
        return x @ self.W + self.b
"""),
    Wrong("Network: W not a leaf (requires_grad inside randn, then * 0.01)", fails=BOTH, code="""
class Network:
    def __init__(self, n_in, n_out):
        self.W = torch.randn(n_out, n_in, requires_grad=True) * 0.01
        self.b = torch.zeros(n_out, requires_grad=True)

    def forward(self, x):
        return self.W @ x + self.b
"""),
    Wrong("Network: b without requires_grad", fails=BOTH, code="""
class Network:
    def __init__(self, n_in, n_out):
        self.W = torch.randn(n_out, n_in) * 0.01
        self.b = torch.zeros(n_out)
        self.W.requires_grad = True

    def forward(self, x):
        return self.W @ x + self.b
"""),
    Wrong("Network: forward forgets the bias", fails=BOTH, code="""
class Network:
    def __init__(self, n_in, n_out):
        self.W = torch.randn(n_out, n_in) * 0.01
        self.b = torch.zeros(n_out)
        self.W.requires_grad = True
        self.b.requires_grad = True

    def forward(self, x):
        return self.W @ x
"""),
    Wrong("Network: b sized n_in as in the sheet (harmless only when n_in == n_out)", fails={"test_Network"},
          code="""
class Network:
    def __init__(self, n_in, n_out):
        self.W = torch.randn(n_out, n_in) * 0.01
        self.b = torch.zeros(n_in)
        self.W.requires_grad = True
        self.b.requires_grad = True

    def forward(self, x):
        return self.W @ x + self.b
"""),
    Right("Network: nn.Module with nn.Parameter and torch.mv", code="""
class Network(torch.nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(n_out, n_in) * 0.01)
        self.b = torch.nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.mv(self.W, x) + self.b
"""),
    Right("Network: float64 parameters, torch.matmul", code="""
class Network:
    def __init__(self, n_in, n_out):
        self.W = (torch.randn(n_out, n_in) * 0.01).double().requires_grad_()
        self.b = torch.zeros(n_out, dtype=torch.float64, requires_grad=True)

    def forward(self, x):
        return torch.matmul(self.W, x.to(self.W.dtype)) + self.b
"""),
    # ---------------------------------------------------------------- train_network
    Wrong("train: gradient ascent", fails={"test_train_network"}, code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(seed)
    f = Network(32, 32)
    losses = []
    for _ in range(steps):
        x, t = torch.randn(32), torch.ones(32)
        loss = ((f.forward(x) - t) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in (f.W, f.b):
                p += lr * p.grad
                p.grad.zero_()
        losses.append(loss.item())
    return losses
"""),
    Wrong("train: never zeroes the gradients", fails={"test_train_network"}, code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(seed)
    f = Network(32, 32)
    losses = []
    for _ in range(steps):
        x, t = torch.randn(32), torch.ones(32)
        loss = ((f.forward(x) - t) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            f.W -= lr * f.W.grad
            f.b -= lr * f.b.grad
        losses.append(loss.item())
    return losses
"""),
    Wrong("train: ignores lr (the sheet's 0.1)", fails={"test_train_network"}, code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(seed)
    f = Network(32, 32)
    losses = []
    for _ in range(steps):
        x, t = torch.randn(32), torch.ones(32)
        loss = ((f.forward(x) - t) ** 2).mean()
        loss.backward()
        f.W.data = f.W.data - 0.1 * f.W.grad.data
        f.b.data = f.b.data - 0.1 * f.b.grad.data
        f.W.grad.zero_()
        f.b.grad.zero_()
        losses.append(loss.item())
    return losses
"""),
    Wrong("train: ignores steps (the sheet's 100)", fails={"test_train_network"}, code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(seed)
    f = Network(32, 32)
    losses = []
    for _ in range(100):
        x, t = torch.randn(32), torch.ones(32)
        loss = ((f.forward(x) - t) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in (f.W, f.b):
                p -= lr * p.grad
                p.grad.zero_()
        losses.append(loss.item())
    return losses
"""),
    Wrong("train: the update rebinds local names, the parameters never change", fails={"test_train_network"}, code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(seed)
    f = Network(32, 32)
    losses = []
    for _ in range(steps):
        x, t = torch.randn(32), torch.ones(32)
        loss = ((f.forward(x) - t) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in (f.W, f.b):
                p = p - lr * p.grad
        f.W.grad.zero_()
        f.b.grad.zero_()
        losses.append(loss.item())
    return losses
"""),
    Wrong("train: ignores seed", fails={"test_train_network"}, code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(0)
    f = Network(32, 32)
    losses = []
    for _ in range(steps):
        x, t = torch.randn(32), torch.ones(32)
        loss = ((f.forward(x) - t) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in (f.W, f.b):
                p -= lr * p.grad
                p.grad.zero_()
        losses.append(loss.item())
    return losses
"""),
    Wrong("train: sum instead of the sheet's mean (diverges)", fails={"test_train_network"}, code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(seed)
    f = Network(32, 32)
    losses = []
    for _ in range(steps):
        x, t = torch.randn(32), torch.ones(32)
        loss = ((f.forward(x) - t) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            for p in (f.W, f.b):
                p -= lr * p.grad
                p.grad.zero_()
        losses.append(loss.item())
    return losses
"""),
    Right("train: the sheet's .data updates, gradients set to None", code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(seed)
    f = Network(32, 32)
    losses = []
    for i in range(steps):
        x = torch.randn(32)
        t = torch.ones(32)
        loss = ((f.forward(x) - t) ** 2).mean()
        loss.backward()
        f.W.data -= lr * f.W.grad.data
        f.b.data -= lr * f.b.grad.data
        f.W.grad = None
        f.b.grad = None
        losses.append(float(loss))
    return losses
"""),
    Right("train: torch.optim.SGD and mse_loss, returning a tuple of 0-d tensors", code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(seed)
    f = Network(32, 32)
    optimiser = torch.optim.SGD([f.W, f.b], lr=lr)
    losses = []
    for _ in range(steps):
        x, t = torch.randn(32), torch.ones(32)
        loss = torch.nn.functional.mse_loss(f.forward(x), t)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.detach())
    return tuple(losses)
"""),
    Right("train: the same recipe inline, without the Network class", code="""
def train_network(steps=100, lr=0.1, seed=0):
    torch.manual_seed(seed)
    W = (torch.randn(32, 32) * 0.01).requires_grad_()
    b = torch.zeros(32, requires_grad=True)
    losses = []
    for _ in range(steps):
        x = torch.randn(32)
        loss = (W @ x + b - 1).square().mean()
        gW, gb = torch.autograd.grad(loss, [W, b])
        with torch.no_grad():
            W.sub_(gW, alpha=lr)
            b.sub_(gb, alpha=lr)
        losses.append(loss.item())
    return losses
"""),
    # ---------------------------------------------------------------- Value
    # Most wrong answers subclass the reference and break one method, as a student would.
    Wrong("Value: '=' instead of '+=' in the backward closures", fails={SHARED, ORDER}, code="""
class Value(Value):
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def _backward():
            self.grad = out.grad
            other.grad = out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def _backward():
            self.grad = other.data * out.grad
            other.grad = self.data * out.grad

        out._backward = _backward
        return out
"""),
    Wrong("Value: naive recursion, no topological order", fails={ORDER}, code="""
class Value(Value):
    def backward(self):
        self.grad = 1.0

        def go(node):
            node._backward()
            for operand in node._prev:
                go(operand)

        go(self)
"""),
    Wrong("Value: depth-first pre-order (a node before its operands)", fails={ORDER}, code="""
class Value(Value):
    def backward(self):
        order, seen = [], set()

        def visit(node):
            if node not in seen:
                seen.add(node)
                order.append(node)
                for operand in node._prev:
                    visit(operand)

        visit(self)
        self.grad = 1.0
        for node in order:
            node._backward()
"""),
    Wrong("Value: breadth-first order", fails={ORDER}, code="""
class Value(Value):
    def backward(self):
        self.grad = 1.0
        queue, seen = [self], {self}
        while queue:
            node = queue.pop(0)
            node._backward()
            for operand in node._prev:
                if operand not in seen:
                    seen.add(operand)
                    queue.append(operand)
"""),
    Wrong("Value: output grad left at 0", fails={LOCAL, SHARED, ORDER}, code="""
class Value(Value):
    def backward(self):
        order, seen = [], set()

        def visit(node):
            if node not in seen:
                seen.add(node)
                for operand in node._prev:
                    visit(operand)
                order.append(node)

        visit(self)
        for node in reversed(order):
            node._backward()
"""),
    Wrong("Value: tanh without the (1 - t^2) factor", fails={LOCAL}, code="""
class Value(Value):
    def tanh(self):
        out = Value(math.tanh(self.data), (self,))

        def _backward():
            self.grad += out.grad

        out._backward = _backward
        return out
"""),
    Wrong("Value: tanh derivative 1 - x^2 of the input", fails={LOCAL}, code="""
class Value(Value):
    def tanh(self):
        out = Value(math.tanh(self.data), (self,))

        def _backward():
            self.grad += (1 - self.data**2) * out.grad

        out._backward = _backward
        return out
"""),
    Wrong("Value: exp forgets out.grad", fails={LOCAL}, code="""
class Value(Value):
    def exp(self):
        out = Value(math.exp(self.data), (self,))

        def _backward():
            self.grad += out.data

        out._backward = _backward
        return out
"""),
    Wrong("Value: relu passes the gradient for negative inputs", fails={LOCAL}, code="""
class Value(Value):
    def relu(self):
        out = Value(max(0.0, self.data), (self,))

        def _backward():
            self.grad += out.grad

        out._backward = _backward
        return out
"""),
    Wrong("Value: relu forgets out.grad", fails={LOCAL}, code="""
class Value(Value):
    def relu(self):
        out = Value(max(0.0, self.data), (self,))

        def _backward():
            self.grad += float(self.data > 0)

        out._backward = _backward
        return out
"""),
    Wrong("Value: power rule k x^k", fails={LOCAL, SHARED, ORDER}, code="""
class Value(Value):
    def __pow__(self, k):
        out = Value(self.data**k, (self,))

        def _backward():
            self.grad += k * self.data**k * out.grad

        out._backward = _backward
        return out
"""),
    Wrong("Value: 2 - v computed as v - 2", fails={FORWARD, LOCAL}, code="""
class Value(Value):
    def __rsub__(self, other):
        return self - other
"""),
    Wrong("Value: 2 / v computed as v / 2", fails={FORWARD, LOCAL}, code="""
class Value(Value):
    def __rtruediv__(self, other):
        return self / other
"""),
    Wrong("Value: no __radd__ (2 + v raises)", fails={FORWARD, LOCAL}, code="""
class Value(Value):
    __radd__ = None
"""),
    Wrong("Value: relu output not clipped (max forgotten), its derivative right", fails={FORWARD}, code="""
class Value(Value):
    def relu(self):
        out = Value(self.data, (self,))

        def _backward():
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out
"""),
    Wrong("Value: local derivatives in a dict keyed by operand, so a * a and a + a count a once",
          fails={SHARED}, code="""
class Value(Value):
    def _node(self, data, local):
        out = Value(data, tuple(local))

        def _backward():
            for operand, derivative in local.items():
                operand.grad += derivative * out.grad

        out._backward = _backward
        return out

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return self._node(self.data + other.data, {self: 1.0, other: 1.0})

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return self._node(self.data * other.data, {self: other.data, other: self.data})
"""),
    Wrong("Value: post-order without a visited set (a shared node's _backward runs twice)", fails={ORDER}, code="""
class Value(Value):
    def backward(self):
        order = []

        def visit(node):
            for operand in node._prev:
                visit(operand)
            order.append(node)

        visit(self)
        self.grad = 1.0
        for node in reversed(order):
            node._backward()
"""),
    Right("Value: local derivatives in a dict keyed by operand, repeated operands added up", code="""
class Value(Value):
    def _node(self, data, pairs):
        local = {}
        for operand, derivative in pairs:
            local[operand] = local.get(operand, 0.0) + derivative
        out = Value(data, tuple(local))

        def _backward():
            for operand, derivative in local.items():
                operand.grad += derivative * out.grad

        out._backward = _backward
        return out

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return self._node(self.data + other.data, [(self, 1.0), (other, 1.0)])

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return self._node(self.data * other.data, [(self, other.data), (other, self.data)])
"""),
    Right("Value: stored local derivatives, Kahn's algorithm, every operation on its own", code="""
class Value:
    def __init__(self, data, children=(), local_grads=()):
        self.data = float(data)
        self.grad = 0.0
        self.children = children
        self.local_grads = local_grads

    @staticmethod
    def lift(other):
        return other if isinstance(other, Value) else Value(other)

    def __add__(self, other):
        other = Value.lift(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    def __radd__(self, other):
        return Value.lift(other) + self

    def __sub__(self, other):
        other = Value.lift(other)
        return Value(self.data - other.data, (self, other), (1.0, -1.0))

    def __rsub__(self, other):
        return Value.lift(other) - self

    def __mul__(self, other):
        other = Value.lift(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __rmul__(self, other):
        return Value.lift(other) * self

    def __truediv__(self, other):
        other = Value.lift(other)
        return Value(self.data / other.data, (self, other), (1 / other.data, -self.data / other.data**2))

    def __rtruediv__(self, other):
        return Value.lift(other) / self

    def __neg__(self):
        return Value(-self.data, (self,), (-1.0,))

    def __pow__(self, k):
        return Value(self.data**k, (self,), (k * self.data ** (k - 1),))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1 - t * t,))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def relu(self):
        return Value(max(self.data, 0.0), (self,), (1.0 if self.data > 0 else 0.0,))

    def backward(self):
        # Count each node's uses inside the graph; a node is ready once all of them have reported.
        uses, seen, stack = {}, {id(self)}, [self]
        while stack:
            node = stack.pop()
            for child in node.children:
                uses[id(child)] = uses.get(id(child), 0) + 1
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append(child)
        self.grad = 1.0
        ready = [self]
        while ready:
            node = ready.pop()
            for child, local in zip(node.children, node.local_grads, strict=True):
                child.grad += local * node.grad
                uses[id(child)] -= 1
                if uses[id(child)] == 0:
                    ready.append(child)
"""),
    Right("Value: micrograd as published (children in a set)", code="""
class Value:
    def __init__(self, data, _children=(), _op=""):
        self.data = data
        self.grad = 0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, other):
        assert isinstance(other, (int, float)), "only supporting int/float powers for now"
        out = Value(self.data**other, (self,), f"**{other}")

        def _backward():
            self.grad += (other * self.data ** (other - 1)) * out.grad

        out._backward = _backward
        return out

    def relu(self):
        out = Value(0 if self.data < 0 else self.data, (self,), "ReLU")

        def _backward():
            self.grad += (out.data > 0) * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        t = (math.exp(2 * self.data) - 1) / (math.exp(2 * self.data) + 1)
        out = Value(t, (self,), "tanh")

        def _backward():
            self.grad += (1 - t**2) * out.grad

        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def backward(self):
        topo = []
        visited = set()

        def build_topo(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build_topo(child)
                topo.append(v)

        build_topo(self)
        self.grad = 1
        for v in reversed(topo):
            v._backward()

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other**-1

    def __rtruediv__(self, other):
        return other * self**-1
"""),
    Right("Value: tanh composed from exp, iterative post-order backward", code="""
class Value(Value):
    def tanh(self):
        e = (self * 2).exp()
        return (e - 1) / (e + 1)

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif node not in seen:
                seen.add(node)
                stack.append((node, True))
                stack.extend((operand, False) for operand in node._prev)
        self.grad = 1.0
        for node in reversed(order):
            node._backward()
"""),
]
