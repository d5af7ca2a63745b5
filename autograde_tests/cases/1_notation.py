"""Plausible wrong answers and correct alternatives for 1_notation.ipynb.

Each Wrong answer must lose exactly the points of the test cells in its `fails`; each Right
answer must keep full marks. The case code runs after the notebook's own imports (math, torch, F).
"""
from mutation import Right, Wrong

CASES = [
    # identity(n)
    Wrong("identity: integer dtype", {"test_identity"}, """
def identity(n):
    return torch.eye(n, dtype=torch.long)
"""),
    Wrong("identity: matrix of ones", {"test_identity"}, """
def identity(n):
    return torch.ones(n, n)
"""),
    Wrong("identity: anti-diagonal", {"test_identity"}, """
def identity(n):
    return torch.eye(n).flip(0)
"""),
    Wrong("identity: vector of ones", {"test_identity"}, """
def identity(n):
    return torch.ones(n)
"""),
    Wrong("identity: nested list, not a tensor", {"test_identity"}, """
def identity(n):
    return [[1.0 if r == c else 0.0 for c in range(n)] for r in range(n)]
"""),
    Right("identity: diag of ones", """
def identity(n):
    return torch.diag(torch.ones(n))
"""),
    Right("identity: float64", """
def identity(n):
    return torch.eye(n, dtype=torch.float64)
"""),
    Right("identity: filled by a loop", """
def identity(n):
    I = torch.zeros(n, n)
    for k in range(n):
        I[k, k] = 1.0
    return I
"""),

    # basis_vector(i, n)
    Wrong("basis_vector: 0-based", {"test_basis_vector"}, """
def basis_vector(i, n):
    if not 0 <= i < n:
        raise ValueError(i)
    e = torch.zeros(n)
    e[i] = 1.0
    return e
"""),
    Wrong("basis_vector: no check, i = 0 wraps to the last element", {"test_basis_vector"}, """
def basis_vector(i, n):
    e = torch.zeros(n)
    e[i - 1] = 1.0
    return e
"""),
    Wrong("basis_vector: only rejects i > n (negative i wraps)", {"test_basis_vector"}, """
def basis_vector(i, n):
    if i > n:
        raise ValueError(i)
    e = torch.zeros(n)
    e[i - 1] = 1.0
    return e
"""),
    Wrong("basis_vector: IndexError instead of ValueError", {"test_basis_vector"}, """
def basis_vector(i, n):
    if not 1 <= i <= n:
        raise IndexError(i)
    e = torch.zeros(n)
    e[i - 1] = 1.0
    return e
"""),
    Wrong("basis_vector: integer dtype", {"test_basis_vector"}, """
def basis_vector(i, n):
    if not 1 <= i <= n:
        raise ValueError(i)
    e = torch.zeros(n, dtype=torch.long)
    e[i - 1] = 1
    return e
"""),
    Right("basis_vector: one_hot", """
def basis_vector(i, n):
    if i < 1 or i > n:
        raise ValueError(f"i = {i} is outside 1..{n}")
    return F.one_hot(torch.tensor(i - 1), n).float()
"""),
    Right("basis_vector: row of the identity, float64", """
def basis_vector(i, n):
    if not 1 <= i <= n:
        raise ValueError(i)
    return torch.eye(n, dtype=torch.float64)[i - 1].clone()
"""),
    Right("basis_vector: explicit checks with a message, built from a list", """
def basis_vector(i, n):
    if i < 1:
        raise ValueError(f"indices start at 1, got {i}")
    if i > n:
        raise ValueError(f"i = {i} > n = {n}")
    return torch.tensor([1.0 if k == i else 0.0 for k in range(1, n + 1)])
"""),

    # diag_matrix(a)
    Wrong("diag_matrix: every row is a (broadcast)", {"test_diag_matrix"}, """
def diag_matrix(a):
    return torch.ones(len(a), len(a)) * a
"""),
    Wrong("diag_matrix: outer product", {"test_diag_matrix"}, """
def diag_matrix(a):
    return torch.outer(a, a)
"""),
    Wrong("diag_matrix: ignores a", {"test_diag_matrix"}, """
def diag_matrix(a):
    return torch.eye(len(a))
"""),
    # The red team's forgery: wipe the input the test then builds its expectation from.
    Wrong("diag_matrix: zeroes a float64 input, returns zeros", {"test_diag_matrix"}, """
def diag_matrix(a):
    if a.dtype == torch.float64:
        a.zero_()
        return torch.zeros(a.numel(), a.numel(), dtype=a.dtype)
    return torch.diag(a)
"""),
    Wrong("diag_matrix: diagonal reversed", {"test_diag_matrix"}, """
def diag_matrix(a):
    return torch.diag(a.flip(0))
"""),
    Right("diag_matrix: eye times a (broadcast over columns)", """
def diag_matrix(a):
    return torch.eye(len(a), dtype=a.dtype) * a
"""),
    Right("diag_matrix: diag_embed", """
def diag_matrix(a):
    return torch.diag_embed(a)
"""),
    Right("diag_matrix: filled by a loop", """
def diag_matrix(a):
    D = torch.zeros(len(a), len(a), dtype=a.dtype)
    for k in range(len(a)):
        D[k, k] = a[k]
    return D
"""),
    # The text asks for a floating-point matrix, not for a's dtype: float32 for a float64 a keeps its point.
    Right("diag_matrix: float32 zeros filled by a loop (float32 result for a float64 a)", """
def diag_matrix(a):
    D = torch.zeros(len(a), len(a))
    for k in range(len(a)):
        D[k, k] = a[k]
    return D
"""),
    Right("diag_matrix: float32 result via .float()", """
def diag_matrix(a):
    return torch.diag(a).float()
"""),

    # row(A, i)
    Wrong("row: 0-based", {"test_row"}, """
def row(A, i):
    return A[i]
"""),
    Wrong("row: returns the column", {"test_row"}, """
def row(A, i):
    return A[:, i - 1]
"""),
    Wrong("row: keeps a (1, n) matrix", {"test_row"}, """
def row(A, i):
    return A[i - 1:i]
"""),
    Wrong("row: Python's negative index for i", {"test_row"}, """
def row(A, i):
    return A[-i]
"""),
    Right("row: select and clone", """
def row(A, i):
    return A.select(0, i - 1).clone()
"""),
    Right("row: transpose of the transpose's column", """
def row(A, i):
    return A.T[:, i - 1]
"""),
    # Out of range is not graded for row, column, all_but: raising and not raising both keep the point.
    Right("row: raises ValueError outside 1..m", """
def row(A, i):
    if not 1 <= i <= A.shape[0]:
        raise ValueError(f"row index {i} outside 1..{A.shape[0]}")
    return A[i - 1]
"""),
    Right("row: A[i - 1] with no range check (i = 0 would wrap)", """
def row(A, i):
    return A[i - 1]
"""),

    # column(A, i)
    Wrong("column: 0-based", {"test_column"}, """
def column(A, i):
    return A[:, i]
"""),
    Wrong("column: returns the row", {"test_column"}, """
def column(A, i):
    return A[i - 1]
"""),
    Wrong("column: keeps an (m, 1) matrix", {"test_column"}, """
def column(A, i):
    return A[:, i - 1:i]
"""),
    Wrong("column: 0-based row of the transpose", {"test_column"}, """
def column(A, i):
    return A.T[i]
"""),
    Right("column: row of the transpose", """
def column(A, i):
    return A.T[i - 1]
"""),
    Right("column: index_select", """
def column(A, i):
    return torch.index_select(A, 1, torch.tensor([i - 1])).reshape(-1)
"""),
    Right("column: raises IndexError outside 1..n", """
def column(A, i):
    if i < 1 or i > A.shape[1]:
        raise IndexError(i)
    return A[:, i - 1]
"""),
    Right("column: no range check, transpose then index", """
def column(A, i):
    return A.t()[i - 1].clone()
"""),

    # all_but(a, i)
    Wrong("all_but: 0-based", {"test_all_but"}, """
def all_but(a, i):
    return torch.cat([a[:i], a[i + 1:]])
"""),
    Wrong("all_but: drops every element equal to a_i", {"test_all_but"}, """
def all_but(a, i):
    return a[a != a[i - 1]]
"""),
    Wrong("all_but: shifts the input in place", {"test_all_but"}, """
def all_but(a, i):
    a[i - 1:-1] = a[i:].clone()
    return a[:-1]
"""),
    Wrong("all_but: returns only element i", {"test_all_but"}, """
def all_but(a, i):
    return a[i - 1:i]
"""),
    Wrong("all_but: Python's a[-i]", {"test_all_but"}, """
def all_but(a, i):
    return a[-i]
"""),
    Right("all_but: boolean mask", """
def all_but(a, i):
    keep = torch.ones(len(a), dtype=torch.bool)
    keep[i - 1] = False
    return a[keep]
"""),
    Right("all_but: list comprehension", """
def all_but(a, i):
    return torch.tensor([v for k, v in enumerate(a.tolist()) if k != i - 1], dtype=a.dtype)
"""),
    Right("all_but: index tensor", """
def all_but(a, i):
    idx = torch.tensor([k for k in range(len(a)) if k != i - 1], dtype=torch.long)
    return a.index_select(0, idx)
"""),
    Right("all_but: raises ValueError outside 1..n", """
def all_but(a, i):
    if not 1 <= i <= len(a):
        raise ValueError(f"all_but: i = {i} outside 1..{len(a)}")
    return torch.cat([a[: i - 1], a[i:]])
"""),
    Wrong("all_but: 0-based, with a range check", {"test_all_but"}, """
def all_but(a, i):
    if not 0 <= i < len(a):
        raise ValueError(i)
    return torch.cat([a[:i], a[i + 1:]])
"""),

    # entropy(p)
    Wrong("entropy: in bits", {"test_entropy"}, """
def entropy(p):
    return -torch.xlogy(p, p).sum() / math.log(2)
"""),
    Wrong("entropy: nan for zero probabilities", {"test_entropy"}, """
def entropy(p):
    return -(p * torch.log(p)).sum()
"""),
    Wrong("entropy: missing minus sign", {"test_entropy"}, """
def entropy(p):
    return torch.xlogy(p, p).sum()
"""),
    Wrong("entropy: sets zeros to 1 in the input", {"test_entropy"}, """
def entropy(p):
    p[p == 0] = 1.0
    return -(p * torch.log(p)).sum()
"""),
    Wrong("entropy: unweighted sum of logs", {"test_entropy"}, """
def entropy(p):
    return -torch.log(p[p > 0]).sum()
"""),
    Right("entropy: torch.special.entr", """
def entropy(p):
    return torch.special.entr(p).sum()
"""),
    Right("entropy: Categorical", """
def entropy(p):
    return torch.distributions.Categorical(probs=p).entropy()
"""),
    Right("entropy: log(p + eps), as a float", """
def entropy(p):
    return float(-(p * torch.log(p + 1e-12)).sum())
"""),
    Right("entropy: masked sum", """
def entropy(p):
    nz = p[p > 0]
    return -(nz * nz.log()).sum()
"""),

    # kl_divergence(p, q)
    Wrong("kl_divergence: p and q swapped", {"test_kl_divergence"}, """
def kl_divergence(p, q):
    return (torch.xlogy(q, q) - torch.xlogy(q, p)).sum()
"""),
    Wrong("kl_divergence: log base 2", {"test_kl_divergence"}, """
def kl_divergence(p, q):
    return ((torch.xlogy(p, p) - torch.xlogy(p, q)) / math.log(2)).sum()
"""),
    Wrong("kl_divergence: nan when p has zeros", {"test_kl_divergence"}, """
def kl_divergence(p, q):
    return (p * torch.log(p / q)).sum()
"""),
    Wrong("kl_divergence: sign flipped", {"test_kl_divergence"}, """
def kl_divergence(p, q):
    return (torch.xlogy(p, q) - torch.xlogy(p, p)).sum()
"""),
    Wrong("kl_divergence: no sum (elementwise terms)", {"test_kl_divergence"}, """
def kl_divergence(p, q):
    return torch.xlogy(p, p) - torch.xlogy(p, q)
"""),
    Right("kl_divergence: F.kl_div", """
def kl_divergence(p, q):
    return F.kl_div(q.log(), p, reduction="sum")
"""),
    Right("kl_divergence: torch.distributions", """
def kl_divergence(p, q):
    Cat = torch.distributions.Categorical
    return torch.distributions.kl_divergence(Cat(probs=p), Cat(probs=q))
"""),
    Right("kl_divergence: Python loop, float", """
def kl_divergence(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p.tolist(), q.tolist(), strict=True) if a > 0)
"""),
    # float32 or float64 results are both accepted, compared to the precision of their dtype.
    Right("kl_divergence: computed in float32 whatever the input", """
def kl_divergence(p, q):
    p, q = p.float(), q.float()
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum()
"""),

    # gaussian_log_density(x, mu, Sigma)
    Wrong("gaussian: missing -n/2 log(2 pi)", {"test_gaussian_log_density"}, """
def gaussian_log_density(x, mu, Sigma):
    d = x - mu
    return -0.5 * torch.logdet(Sigma) - 0.5 * d @ torch.linalg.solve(Sigma, d)
"""),
    Wrong("gaussian: Sigma instead of its inverse", {"test_gaussian_log_density"}, """
def gaussian_log_density(x, mu, Sigma):
    d = x - mu
    return -0.5 * len(x) * math.log(2 * math.pi) - 0.5 * torch.logdet(Sigma) - 0.5 * d @ Sigma @ d
"""),
    Wrong("gaussian: ignores off-diagonal terms", {"test_gaussian_log_density"}, """
def gaussian_log_density(x, mu, Sigma):
    var = torch.diagonal(Sigma)
    d = x - mu
    return -0.5 * len(x) * math.log(2 * math.pi) - 0.5 * torch.log(var).sum() - 0.5 * (d**2 / var).sum()
"""),
    Wrong("gaussian: log det without the 1/2", {"test_gaussian_log_density"}, """
def gaussian_log_density(x, mu, Sigma):
    d = x - mu
    return -0.5 * len(x) * math.log(2 * math.pi) - torch.logdet(Sigma) - 0.5 * d @ torch.linalg.solve(Sigma, d)
"""),
    Wrong("gaussian: log(det(Sigma)) underflows in high dimension", {"test_gaussian_log_density"}, """
def gaussian_log_density(x, mu, Sigma):
    d = x - mu
    return (-0.5 * len(x) * math.log(2 * math.pi) - 0.5 * torch.log(torch.det(Sigma))
            - 0.5 * d @ torch.inverse(Sigma) @ d)
"""),
    Wrong("gaussian: -1/2 log(2 pi) once instead of n times", {"test_gaussian_log_density"}, """
def gaussian_log_density(x, mu, Sigma):
    d = x - mu
    return -0.5 * math.log(2 * math.pi) - 0.5 * torch.logdet(Sigma) - 0.5 * d @ torch.linalg.solve(Sigma, d)
"""),
    Right("gaussian: MultivariateNormal", """
def gaussian_log_density(x, mu, Sigma):
    return torch.distributions.MultivariateNormal(mu, covariance_matrix=Sigma).log_prob(x)
"""),
    Right("gaussian: slogdet and solve", """
def gaussian_log_density(x, mu, Sigma):
    d = x - mu
    sign, logabsdet = torch.linalg.slogdet(Sigma)
    return -0.5 * (len(x) * math.log(2 * math.pi) + logabsdet + d @ torch.linalg.solve(Sigma, d))
"""),
    Right("gaussian: float64 Cholesky with cholesky_solve", """
def gaussian_log_density(x, mu, Sigma):
    x, mu, Sigma = x.double(), mu.double(), Sigma.double()
    L = torch.linalg.cholesky(Sigma)
    d = (x - mu).unsqueeze(1)
    quad = (d * torch.cholesky_solve(d, L)).sum()
    return -0.5 * x.numel() * math.log(2 * math.pi) - torch.log(torch.diagonal(L)).sum() - 0.5 * quad
"""),
    Right("gaussian: computed in float32 whatever the input", """
def gaussian_log_density(x, mu, Sigma):
    x, mu, Sigma = x.float(), mu.float(), Sigma.float()
    return torch.distributions.MultivariateNormal(mu, covariance_matrix=Sigma).log_prob(x)
"""),

    # lp_norm(x, p)
    Wrong("lp_norm: no 1/p root", {"test_lp_norm"}, """
def lp_norm(x, p):
    if p == float("inf"):
        return x.abs().max()
    return (x.abs() ** p).sum()
"""),
    Wrong("lp_norm: no absolute value", {"test_lp_norm"}, """
def lp_norm(x, p):
    if p == float("inf"):
        return x.abs().max()
    return (x**p).sum() ** (1 / p)
"""),
    Wrong("lp_norm: inf-norm as a sum", {"test_lp_norm"}, """
def lp_norm(x, p):
    if p == float("inf"):
        return x.abs().sum()
    return (x.abs() ** p).sum() ** (1 / p)
"""),
    Wrong("lp_norm: inf-norm as max without abs", {"test_lp_norm"}, """
def lp_norm(x, p):
    if p == float("inf"):
        return x.max()
    return (x.abs() ** p).sum() ** (1 / p)
"""),
    Wrong("lp_norm: no special case for p = inf", {"test_lp_norm"}, """
def lp_norm(x, p):
    return (x.abs() ** p).sum() ** (1 / p)
"""),
    Wrong("lp_norm: integer p only (rounds p)", {"test_lp_norm"}, """
def lp_norm(x, p):
    if p == float("inf"):
        return x.abs().max()
    p = round(p)
    return (x.abs() ** p).sum() ** (1 / p)
"""),
    Right("lp_norm: torch.linalg.vector_norm", """
def lp_norm(x, p):
    return torch.linalg.vector_norm(x, ord=p)
"""),
    Right("lp_norm: torch.norm, as a float", """
def lp_norm(x, p):
    return float(torch.norm(x, p=p))
"""),
    Right("lp_norm: scaled by the max magnitude, in float64", """
def lp_norm(x, p):
    m = x.double().abs().max()
    if p == float("inf") or m == 0:
        return m
    return m * ((x.double().abs() / m) ** p).sum() ** (1 / p)
"""),
    Right("lp_norm: computed in float32 whatever the input", """
def lp_norm(x, p):
    return torch.linalg.vector_norm(x.float(), ord=p)
"""),

    # sigmoid(x)
    Wrong("sigmoid: sign error", {"test_sigmoid"}, """
def sigmoid(x):
    return 1 / (1 + torch.exp(x))
"""),
    Wrong("sigmoid: exp(x) / (1 + exp(x)) is nan for large x", {"test_sigmoid"}, """
def sigmoid(x):
    return torch.exp(x) / (1 + torch.exp(x))
"""),
    Wrong("sigmoid: tanh", {"test_sigmoid"}, """
def sigmoid(x):
    return torch.tanh(x)
"""),
    Wrong("sigmoid: float32 only, rewrites a float64 input to match its wrong answer", {"test_sigmoid"}, """
def sigmoid(x):
    if x.dtype == torch.float64:
        with torch.no_grad():
            x.fill_(float("nan"))
        return torch.full_like(x, float("nan"))
    return torch.sigmoid(x)
"""),
    Wrong("sigmoid: modifies its input in place", {"test_sigmoid"}, """
def sigmoid(x):
    return x.neg_().exp_().add_(1).reciprocal_()
"""),
    Right("sigmoid: torch.sigmoid", """
def sigmoid(x):
    return torch.sigmoid(x)
"""),
    Right("sigmoid: via tanh", """
def sigmoid(x):
    return 0.5 * (1 + torch.tanh(x / 2))
"""),
    Right("sigmoid: stable two-branch form", """
def sigmoid(x):
    z = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))
"""),
    Right("sigmoid: computed in float32 whatever the input", """
def sigmoid(x):
    return torch.sigmoid(x.float())
"""),

    # softplus(x)
    Wrong("softplus: naive log(1 + exp(x))", {"test_softplus"}, """
def softplus(x):
    return torch.log(1 + torch.exp(x))
"""),
    Wrong("softplus: log1p(exp(x)) overflows", {"test_softplus"}, """
def softplus(x):
    return torch.log1p(torch.exp(x))
"""),
    Wrong("softplus: stable shift but log(1 + u) loses tiny values", {"test_softplus"}, """
def softplus(x):
    return torch.clamp(x, min=0) + torch.log(1 + torch.exp(-x.abs()))
"""),
    Wrong("softplus: threshold at 0 (returns x for x > 0)", {"test_softplus"}, """
def softplus(x):
    return torch.where(x > 0, x, torch.log1p(torch.exp(x)))
"""),
    Wrong("softplus: sign error in the correction", {"test_softplus"}, """
def softplus(x):
    return torch.clamp(x, min=0) - torch.log1p(torch.exp(-x.abs()))
"""),
    Wrong("softplus: ReLU", {"test_softplus"}, """
def softplus(x):
    return torch.relu(x)
"""),
    Right("softplus: F.softplus", """
def softplus(x):
    return F.softplus(x)
"""),
    Right("softplus: logaddexp(x, 0)", """
def softplus(x):
    return torch.logaddexp(x, torch.zeros_like(x))
"""),
    Right("softplus: two branches with torch.where", """
def softplus(x):
    return torch.where(x > 0, x + torch.log1p(torch.exp(-x)), torch.log1p(torch.exp(x)))
"""),
    Right("softplus: computed in float64, returned in the input's dtype", """
def softplus(x):
    y = x.double()
    return (torch.maximum(y, torch.zeros_like(y)) + torch.log1p(torch.exp(-y.abs()))).to(x.dtype)
"""),
    Right("softplus: computed in float32 whatever the input", """
def softplus(x):
    return F.softplus(x.float())
"""),

    # positive_part(x)
    Wrong("positive_part: absolute value", {"test_positive_part"}, """
def positive_part(x):
    return x.abs()
"""),
    Wrong("positive_part: min instead of max", {"test_positive_part"}, """
def positive_part(x):
    return torch.clamp(x, max=0)
"""),
    Wrong("positive_part: indicator 1_{x > 0}", {"test_positive_part"}, """
def positive_part(x):
    return (x > 0).float()
"""),
    Wrong("positive_part: clamps the input in place", {"test_positive_part"}, """
def positive_part(x):
    return x.clamp_(min=0)
"""),
    Wrong("positive_part: torch.max over the whole tensor", {"test_positive_part"}, """
def positive_part(x):
    return torch.max(x)
"""),
    Right("positive_part: torch.relu", """
def positive_part(x):
    return torch.relu(x)
"""),
    Right("positive_part: (x + |x|) / 2", """
def positive_part(x):
    return (x + x.abs()) / 2
"""),
    Right("positive_part: x times the indicator", """
def positive_part(x):
    return x * (x > 0)
"""),
    Right("positive_part: torch.maximum", """
def positive_part(x):
    return torch.maximum(x, torch.zeros_like(x))
"""),
    Right("positive_part: float32 result whatever the input", """
def positive_part(x):
    return torch.relu(x).float()
"""),
]
