"""nn.py - a multilayer perceptron trained by mini-batch SGD, backpropagation written out.

The model the searches tune; its hyperparameters are BLEND: Batch size, Learning rate,
Epochs, Number of layers, Dropout rate.

Read down to the banner `# ---- engineering` for the whole algorithm in plain NumPy: data,
the MLP, forward, loss, backward, the update, the training loop. With device="gpu" those
functions run on CuPy arrays. Below the banner is the fast CPU path used when numba is
installed: the same steps as short compiled loops (each names the reference function it
computes) around numpy's matrix products. The first run of a process compiles them (about
a second) and Numba caches them in __pycache__ for later processes. To run exactly the
NumPy code above the banner, set nn.USE_NUMBA = False (NUMBA_DISABLE_JIT=1 instead runs the
compiled functions as plain Python).

Limits: in float32 the compiled path, the same loops run by Python (NUMBA_DISABLE_JIT=1)
and the NumPy reference round and sum in different orders; SGD amplifies those last-bit
differences, so after many epochs the weights differ visibly and a validation accuracy can
differ in its second digit (`python bench.py paths` measures it). In float64 the paths agree to
about 1e-10: pass dtype=np.float64 for numbers that do not depend on the install.

References:
  D. E. Rumelhart, G. E. Hinton & R. J. Williams, "Learning representations by
    back-propagating errors", Nature 323, 533-536, 1986.
  K. He, X. Zhang, S. Ren & J. Sun, "Delving Deep into Rectifiers", ICCV 2015 (He init).
  X. Glorot & Y. Bengio, "Understanding the difficulty of training deep feedforward
    neural networks", AISTATS 2010 (Glorot init).
  N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever & R. Salakhutdinov, "Dropout: A
    Simple Way to Prevent Neural Networks from Overfitting", JMLR 15, 2014.
  B. T. Polyak, "Some methods of speeding up the convergence of iteration methods",
    USSR Computational Mathematics and Mathematical Physics 4(5), 1964 (momentum).
  G. L. Steele, D. Lea & C. H. Flood, "Fast Splittable Pseudorandom Number Generators",
    OOPSLA 2014 (splitmix64, used here as a counter-based generator for dropout masks).
Depends on: numpy; numba (optional, for speed); cupy (optional, device="gpu"). Licence: MIT.
"""
import math

import numpy as np

try:
    import cupy
except ImportError:
    cupy = None

# n: samples  b: batch size (in shapes; b[l] are the biases)  h: units in a layer
# c: classes  P: number of parameters  L: weight layers. sizes = [n_in, h_1, ..., c].
# Layer l maps A_{l-1} -> A_l: Z_l = A_{l-1} W_l + b_l (pre-activation), H_l = f(Z_l),
# A_l = H_l * M_l (dropout mask). The code counts from 0: W[l] maps A[l] to H[l] (A[0] = X).
# All parameters live in one flat buffer theta (P,); W[l] (h_in, h_out) and b[l] are views.
# Backward: G_l = dL/dZ_l (b, h_l); dW[l], db[l] are the gradients, shaped like W[l], b[l].

ACTIVATIONS = {"relu": 0, "tanh": 1}    # the compiled twins below the banner take the number

# ----------------------------------------------------------------------------- data


def make_spirals(n_per_class=200, n_classes=3, noise=0.2, seed=0):
    """Interleaved spiral arms, one per class (after the CS231n toy data set), seeded.

    Point i of arm k: radius r in [0.05, 1], angle 2 pi k / n_classes + 3 pi r + noise * N(0, 1).
    returns: X (n, 2) float64, y (n,) int64 with n = n_per_class * n_classes
    """
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.05, 1.0, n_per_class), n_classes)          # (n,)
    y = np.repeat(np.arange(n_classes), n_per_class)                      # (n,)
    angle = 2 * np.pi * y / n_classes + 3 * np.pi * r + noise * rng.standard_normal(len(y))
    return np.column_stack([r * np.sin(angle), r * np.cos(angle)]), y    # (n, 2), (n,)


def train_val_test_split(X, y, val=0.2, test=0.2, seed=0):
    """Shuffled split: ((X_train, y_train), (X_val, y_val), (X_test, y_test))."""
    perm = np.random.default_rng(seed).permutation(len(X))
    n_test, n_val = round(test * len(X)), round(val * len(X))
    parts = np.split(perm, [len(X) - n_val - n_test, len(X) - n_test])
    return tuple((X[p], y[p]) for p in parts)

# ----------------------------------------------------------------------------- the model


def layer_views(theta, sizes):
    """W[l] (sizes[l], sizes[l+1]) and b[l] (sizes[l+1],) as views into theta (P,)."""
    W, b, offset = [], [], 0
    for h_in, h_out in zip(sizes[:-1], sizes[1:]):
        W.append(theta[offset:offset + h_in * h_out].reshape(h_in, h_out))
        offset += h_in * h_out
        b.append(theta[offset:offset + h_out])
        offset += h_out
    return W, b


class MLP:
    """A fully connected network; W initialised He (relu) or Glorot (tanh), b at 0."""

    def __init__(self, sizes, activation="relu", dropout=0.0, seed=0, dtype=np.float32,
                 device="cpu"):
        sizes = list(sizes) if hasattr(sizes, "__len__") else sizes
        if (not isinstance(sizes, list) or len(sizes) < 2
                or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes)):
            raise ValueError(f"sizes must list at least 2 positive ints [n_in, ..., n_out]; "
                             f"got {sizes!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"dropout must be a number in [0, 1); got {dropout!r}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64; got {dtype!r}")
        if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
            raise ValueError(f"seed must be an int >= 0; got {seed!r}")
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu'; got {device!r}")
        if device == "gpu" and (cupy is None or not _gpu_available()):
            raise ValueError("device='gpu' needs CuPy and an NVIDIA GPU: pip install "
                             "cupy-cuda12x (or the wheel matching your CUDA)")
        self.sizes, self.activation, self.dropout = [int(s) for s in sizes], activation, dropout
        self.dtype, self.device = np.dtype(dtype), device
        self.xp = cupy if device == "gpu" else np
        rng = np.random.default_rng(seed)
        theta = np.zeros(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])), self.dtype)
        for W, (h_in, h_out) in zip(layer_views(theta, self.sizes)[0], zip(sizes[:-1], sizes[1:])):
            std = math.sqrt(2 / h_in) if activation == "relu" else math.sqrt(2 / (h_in + h_out))
            W[:] = std * rng.standard_normal((h_in, h_out))   # He 2015 / Glorot 2010
        self.theta = self.xp.asarray(theta)                    # (P,)
        self.W, self.b = layer_views(self.theta, self.sizes)
        self.velocity = self.xp.zeros_like(self.theta)         # (P,) SGD momentum, see train
        self.epochs_trained = 0

    def predict_proba(self, X):
        """Class probabilities (n, c) as a NumPy array; dropout off."""
        X = self.xp.asarray(_check_X(X, self.sizes[0]), dtype=self.dtype)
        logits = forward(self.W, self.b, X, self.activation)[2]
        P = softmax(logits)
        return cupy.asnumpy(P) if self.xp is not np else P

    def predict(self, X):
        """Predicted labels (n,) int64."""
        return np.argmax(self.predict_proba(X), axis=1)


def accuracy(model, X, y):
    """Fraction of correct labels."""
    return float(np.mean(model.predict(X) == np.asarray(y)))


# ----------------------------------------------------------------------------- forward


def hidden_forward(Z, b, activation):
    """H = f(Z + b), f = relu (max(z, 0)) or tanh.  Z: (b, h)  b: (h,)  returns: (b, h)"""
    Z = Z + b
    return np.maximum(Z, 0) if activation == "relu" else np.tanh(Z)


def forward(W, b, X, activation, masks=None):
    """All layers: H_l = f(A_{l-1} W_l + b_l), A_l = H_l * M_l; logits = A_{L-1} W_L + b_L.

    X: (b, n_in)  masks: None or one (b, h_l) per hidden layer
    returns: A [X, A_1, ...] (inputs of each layer), H [(b, h_l)], logits (b, c)
    """
    A, H = [X], []
    for l in range(len(W) - 1):
        H.append(hidden_forward(A[-1] @ W[l], b[l], activation))   # (b, h_l)
        A.append(H[-1] if masks is None else H[-1] * masks[l])      # (b, h_l)
    return A, H, A[-1] @ W[-1] + b[-1]                              # (b, c)

# ----------------------------------------------------------------------------- dropout masks
# Counter-based random numbers: unit j of sample `row` in a layer gets
# uniform(splitmix64(key + row * h + j)), so the same sample has the same mask in the NumPy,
# Numba and CuPy paths, whatever the batch layout.

_U64 = np.uint64


def splitmix64(z):
    """The splitmix64 finaliser (Steele et al. 2014) on uint64 arrays (wraps mod 2^64)."""
    z = z + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def mask_key(seed, epoch, layer):
    """The key of one layer's masks in one epoch (a Python int < 2^63: an int64 too)."""
    counter = ((seed * 1_000_003 + epoch) * 1_000_003 + layer) % 2 ** 64   # any seed fits
    return int(splitmix64(np.array([counter], _U64))[0] % _U64(2 ** 63))


def dropout_mask(key, rows, h, p, dtype, xp=np):
    """Inverted dropout (Srivastava et al. 2014): 0 with probability p, else 1 / (1 - p).
    rows: (b,) sample indices  returns: (b, h)"""
    counter = (_U64(key) + xp.asarray(rows).astype(_U64)[:, None] * _U64(h)
               + xp.arange(h, dtype=_U64)[None, :])                # (b, h)
    u = (splitmix64(counter) >> _U64(11)) * (1.0 / 2 ** 53)         # (b, h) uniform [0, 1)
    return ((u >= p) / (1 - p)).astype(dtype)

# ----------------------------------------------------------------------------- loss


def softmax(logits):
    """softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z). logits: (b, c)"""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, y):
    """Mean loss and its gradient: loss = mean_i(logsumexp(z_i) - z_{i, y_i}),
    dloss/dz = (softmax(z) - onehot(y)) / b. Log-sum-exp after subtracting the row max,
    so logits of +-1e4 do not overflow.  logits: (b, c)  y: (b,)  returns: float, (b, c)"""
    rows = np.arange(len(y)) if isinstance(y, np.ndarray) else cupy.arange(len(y))
    z = logits - logits.max(axis=1, keepdims=True)                  # (b, c)
    log_sum = np.log(np.exp(z).sum(axis=1))                         # (b,)
    loss = (log_sum - z[rows, y]).mean()
    G = np.exp(z - log_sum[:, None])                                # (b, c) softmax
    G[rows, y] -= 1
    return float(loss), G / len(y)

# ----------------------------------------------------------------------------- backward


def hidden_backward(G, H, mask, activation):
    """dL/dZ_l from dL/dA_l: through the mask, then f'(Z) read off H = f(Z):
    relu'(z) = [z > 0] = [H > 0],  tanh'(z) = 1 - tanh(z)^2 = 1 - H^2.  G, H: (b, h)"""
    if mask is not None:
        G = G * mask
    return G * (H > 0) if activation == "relu" else G * (1 - H * H)


def backward(W, A, H, masks, G, activation):
    """Backpropagation (Rumelhart et al. 1986) from G = dL/dlogits (b, c):
    dW_l = A_{l-1}^T G_l,  db_l = sum over rows of G_l,
    G_{l-1} = hidden_backward(G_l W_l^T).   returns: dW, db (lists like W, b)"""
    dW, db = [None] * len(W), [None] * len(W)
    for l in reversed(range(len(W))):
        dW[l] = A[l].T @ G                                          # (h_in, h_out)
        db[l] = G.sum(axis=0)                                       # (h_out,)
        if l:
            G = hidden_backward(G @ W[l].T, H[l - 1], None if masks is None else masks[l - 1],
                                activation)                         # (b, h_in)
    return dW, db

# ----------------------------------------------------------------------------- update


def sgd_momentum(theta, velocity, grad, lr, momentum, weight_decay, decay):
    """v <- mu v - lr (g + lambda * decay * theta);  theta <- theta + v   (Polyak 1964).
    decay (P,) is 1 on weights, 0 on biases (L2 weight decay on W only). In place."""
    velocity *= momentum
    velocity -= lr * (grad + weight_decay * decay * theta)
    theta += velocity

# ----------------------------------------------------------------------------- training loop

DIVERGED = 100  # a batch loss above 100 x log(c) counts as diverged: the stable log-sum-exp
#                 keeps an exploding loss finite (1e4 and more), so NaN/inf alone miss it


def _epoch_numpy(model, X, y, perm, batch_size, lr, momentum, weight_decay, velocity,
                 decay, keys, max_loss):
    """One epoch with the reference functions (also the GPU path). Returns the mean loss,
    or, as soon as a batch loss is not <= max_loss (NaN, inf, exploding), that loss."""
    xp, total = model.xp, 0.0
    grad = xp.zeros_like(model.theta)                               # (P,) gradient buffer
    dW, db = layer_views(grad, model.sizes)
    for start in range(0, len(perm), batch_size):                   # last batch may be short
        rows = perm[start:start + batch_size]                        # (b,)
        masks = None if model.dropout == 0 else [
            dropout_mask(key, rows, h, model.dropout, model.dtype, xp)
            for key, h in zip(keys, model.sizes[1:-1])]
        A, H, logits = forward(model.W, model.b, X[rows], model.activation, masks)
        loss, G = softmax_cross_entropy(logits, y[rows])
        if not loss <= max_loss:
            return loss
        grads_W, grads_b = backward(model.W, A, H, masks, G, model.activation)
        for target, value in zip(dW + db, grads_W + grads_b):    # into the flat buffer
            target[...] = value
        sgd_momentum(model.theta, velocity, grad, lr, momentum, weight_decay, decay)
        total += loss * len(rows)
    return total / len(perm)


def train(model, X, y, epochs, batch_size, lr, momentum=0.9, weight_decay=0.0, seed=0,
          X_val=None, y_val=None):
    """Mini-batch SGD with momentum on softmax cross-entropy.

    Each epoch visits the samples in a fresh order drawn from (seed, epoch); the last
    batch may be smaller. Training continues from the model's state, as an optimiser object
    would: its momentum buffer (model.velocity) and its epoch count (model.epochs_trained,
    which numbers the epochs for the shuffles and dropout masks), so epochs=4 gives the
    same weights as four calls with epochs=1. Stops at once, with diverged=True, if a batch
    loss is NaN, inf, or above DIVERGED x log(c) (DIVERGED times the loss of a uniform
    guess); nothing raises.
    X: (n, n_in)  y: (n,) ints in [0, c)
    returns: {"loss": [per epoch; after a divergence, the last is that batch's], "val_loss":
    [...], "val_accuracy": [...], "diverged": bool}
    """
    X, y = _check_data(model, X, y, "X", "y")
    for name, value, ok, allowed in [
            ("epochs", epochs, isinstance(epochs, (int, np.integer)) and epochs >= 1, "an int >= 1"),
            ("batch_size", batch_size, isinstance(batch_size, (int, np.integer)) and batch_size >= 1,
             "an int >= 1"),
            ("lr", lr, _real(lr) and lr > 0, "a finite number > 0"),
            ("momentum", momentum, _real(momentum) and 0 <= momentum < 1, "a number in [0, 1)"),
            ("weight_decay", weight_decay, _real(weight_decay) and weight_decay >= 0,
             "a finite number >= 0"),
            ("seed", seed, isinstance(seed, (int, np.integer)) and seed >= 0, "an int >= 0")]:
        if not ok:
            raise ValueError(f"{name} must be {allowed}; got {value!r}")
    if (X_val is None) != (y_val is None):
        raise ValueError("give both X_val and y_val, or neither")
    if X_val is not None:
        X_val_checked, y_val_np = _check_data(model, X_val, y_val, "X_val", "y_val")
    xp, n = model.xp, len(X)
    Xd, yd = xp.asarray(X, dtype=model.dtype), xp.asarray(y)        # on the device throughout
    velocity = model.velocity                                       # (P,) kept between calls
    decay = xp.concatenate([xp.concatenate([xp.ones(W.size, model.dtype), xp.zeros(len(b), model.dtype)])
                            for W, b in zip(model.W, model.b)])      # (P,) 1 on W, 0 on b
    batch = int(min(batch_size, n))
    history = {"loss": [], "val_loss": [], "val_accuracy": [], "diverged": False}
    max_loss = DIVERGED * math.log(max(model.sizes[-1], 2))        # see DIVERGED
    # on CPU with numba, _epoch_nb (below the banner) runs the same epoch, compiled
    epoch_of = _epoch_nb if USE_NUMBA and xp is np else _epoch_numpy
    with np.errstate(all="ignore"):                                 # divergence is reported
        for epoch in range(model.epochs_trained, model.epochs_trained + int(epochs)):
            model.epochs_trained += 1
            perm = np.random.default_rng([seed, epoch]).permutation(n)  # (n,)
            keys = np.array([mask_key(seed, epoch, l) for l in range(len(model.sizes) - 2)]
                            or [0], dtype=np.uint64)                 # (L - 1,) or (1,)
            loss = epoch_of(model, Xd, yd, xp.asarray(perm), batch, lr, momentum,
                            weight_decay, velocity, decay, keys, max_loss)
            history["loss"].append(float(loss))
            if not loss <= max_loss:
                history["diverged"] = True
                break
            if X_val is not None:
                P = model.predict_proba(X_val_checked)
                true_p = P[np.arange(len(y_val_np)), y_val_np]
                floor = np.finfo(P.dtype).tiny        # 1e-300 would round to 0 in float32
                history["val_loss"].append(float(-np.mean(np.log(np.maximum(true_p, floor)))))
                history["val_accuracy"].append(float(np.mean(P.argmax(axis=1) == y_val_np)))
    return history

# ---- engineering: safe to skip on a first read ----
# What a working library needs and a learner does not: the helpers of input validation
# (MLP and train check their arguments above), then the compiled CPU path that train uses
# when numba is installed.


def _real(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) \
        and math.isfinite(x)


def _check_X(X, n_in, name="X"):
    X = cupy.asnumpy(X) if cupy is not None and isinstance(X, cupy.ndarray) else np.asarray(X)
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"{name} must be 2-D with {n_in} columns (n, {n_in}); got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must hold finite numbers (no NaN or inf)")
    return X


def _check_data(model, X, y, x_name, y_name):
    X = _check_X(X, model.sizes[0], x_name)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"{y_name} must be 1-D with one label per row of {x_name} ({len(X)}); "
                         f"got shape {y.shape}")
    c = model.sizes[-1]
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= c)):
        raise ValueError(f"{y_name} must be integer labels in [0, {c}); got dtype {y.dtype}, "
                         f"range [{y.min() if len(y) else '-'}, {y.max() if len(y) else '-'}]")
    if len(X) == 0:
        raise ValueError(f"{x_name} has no rows")
    return X, y.astype(np.int64)


def _gpu_available():
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:                                 # no driver or no device
        return False


# ----------------------------------------------------------------------------- compiled path
# Each twin below computes one reference function above (its docstring names it): the
# elementwise ones as loops over [i, j], fused with the step next to it and writing into an
# array it is given (no new arrays per batch); forward_nb, backward_nb and _epoch_nb are
# plain Python around np.dot that call them. The update's lr, momentum and weight decay
# come in an array of the parameters' dtype: a Python float would turn float32 loops into
# float64 ones, and numba unboxes a numpy scalar argument more slowly than an array. The
# loss sums stay float64 on purpose. With NUMBA_DISABLE_JIT=1 the twins run as the Python
# loops they are, so a debugger can step into them.

try:
    import numba
    njit = numba.njit(cache=True)       # compiled once, then loaded from __pycache__
except ImportError:
    numba = None

    def njit(f):                        # the twins stay plain Python and unused:
        return f                        # train runs _epoch_numpy

USE_NUMBA = numba is not None   # the compiled path; set False to run the NumPy reference


@njit
def _uniform_nb(z):
    """Twin of the uniform draw in dropout_mask for one uint64 counter."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 2 ** 53)


@njit
def hidden_forward_nb(H, b, activation, rows, key, p, scale, M, A):
    """Twin of hidden_forward and of forward's dropout line, in place: H (b, h) holds
    Z = A W on entry and H = f(Z + b) on exit (activation 0: relu, 1: tanh). If p > 0,
    also M = dropout_mask(key, rows, h, p) (scale = 1 / (1 - p)) and A = H * M; without
    dropout A is H and M stays all ones."""
    batch, h = H.shape
    for i in range(batch):
        counter = np.uint64(key) + np.uint64(rows[i]) * np.uint64(h)  # as in dropout_mask
        for j in range(h):
            z = H[i, j] + b[j]
            H[i, j] = (0.0 if z < 0 else z) if activation == 0 else np.tanh(z)  # NaN stays
            if p > 0:
                M[i, j] = scale if _uniform_nb(counter + np.uint64(j)) >= p else 0.0
                A[i, j] = H[i, j] * M[i, j]


@njit
def softmax_cross_entropy_nb(Z, b, y, G, db):
    """Twin of softmax_cross_entropy(Z + b, y): the logits' bias added on the fly; writes
    dL/dlogits into G (b, c) and its column sums into db (c,) (backward's db of the last
    layer); returns the loss.  Z: (b, c) = A W of the last layer  y: (b,)"""
    batch, c = Z.shape
    loss = 0.0
    for k in range(c):
        db[k] = 0
    for i in range(batch):
        top = Z[i, 0] + b[0]                                        # max_k z_ik
        for k in range(1, c):
            top = max(top, Z[i, k] + b[k])
        total = 0.0
        for k in range(c):
            G[i, k] = math.exp(Z[i, k] + b[k] - top)                # exp(z - max z)
            total += G[i, k]
        loss += math.log(total) + top - (Z[i, y[i]] + b[y[i]])      # logsumexp(z) - z_y
        for k in range(c):
            G[i, k] = (G[i, k] / total - (k == y[i])) / batch       # (softmax - onehot) / b
            db[k] += G[i, k]
    return loss / batch


@njit
def hidden_backward_nb(G, H, M, activation, db):
    """Twin of hidden_backward, in place on G (b, h), M the mask (all ones without
    dropout); also db (h,) = G.sum(axis=0) of the result, backward's next line."""
    batch, h = G.shape
    one = np.float32(1)                     # an int 1 would turn float32 into float64
    for j in range(h):
        db[j] = 0
    for i in range(batch):
        for j in range(h):
            g = G[i, j] * M[i, j]
            G[i, j] = g * (H[i, j] > 0) if activation == 0 else g * (one - H[i, j] * H[i, j])
            db[j] += G[i, j]


@njit
def sgd_momentum_nb(theta, velocity, grad, hyper, decay):
    """Twin of sgd_momentum: one pass over the parameters (P,); hyper (3,) holds lr,
    momentum and weight_decay in theta's dtype."""
    lr, momentum, weight_decay = hyper[0], hyper[1], hyper[2]
    for i in range(theta.shape[0]):
        velocity[i] = momentum * velocity[i] - lr * (grad[i] + weight_decay * decay[i] * theta[i])
        theta[i] += velocity[i]


def forward_nb(W, b, A, H, M, Z, rows, keys, activation, p, scale):
    """Twin of forward into the arrays of _work_arrays: A[0] is the batch of X; fills H, M
    and A[1:], and Z (b, c) = A_{L-1} W_L, the logits without their bias (which
    softmax_cross_entropy_nb adds). Plain Python: products by np.dot (BLAS; it costs less
    per call than matmul), the rest by the twin."""
    for l in range(len(W) - 1):
        np.dot(A[l], W[l], out=H[l])                                # (b, h_l) Z_l = A W
        hidden_forward_nb(H[l], b[l], activation, rows, keys[l], p, scale, M[l], A[l + 1])
    np.dot(A[-1], W[-1], out=Z)                                     # (b, c), + b[-1] later


def backward_nb(W, A, H, M, G, dW, db, activation):
    """Twin of backward into given arrays: G[l] is dL/dZ of layer l (b, h_l), G[-1] filled
    by softmax_cross_entropy_nb (with db[-1]); fills dW, the other db and G."""
    for l in reversed(range(len(W))):
        np.dot(A[l].T, G[l], out=dW[l])                             # (h_in, h_out)
        if l:
            np.dot(G[l], W[l].T, out=G[l - 1])                      # (b, h_in) dL/dA
            hidden_backward_nb(G[l - 1], H[l - 1], M[l - 1], activation, db[l - 1])  # and db


def _epoch_nb(model, X, y, perm, batch_size, lr, momentum, weight_decay, velocity,
              decay, keys, max_loss):
    """Twin of _epoch_numpy (CPU, numba): the same steps on arrays made once per epoch.

    Step by step, the reference line (left) and where the twins do it (right):
      X[rows], y[rows]              gathered for the whole epoch at once: Xp, yp
      A[l] @ W[l]                   np.dot(A[l], W[l], out=H[l])             forward_nb
      hidden_forward, * masks[l]    hidden_forward_nb (draws the mask too)   forward_nb
      A[-1] @ W[-1] + b[-1]         np.dot(..., out=Z); + b[-1] in softmax_cross_entropy_nb
      softmax_cross_entropy         softmax_cross_entropy_nb (with db[-1])
      dW[l] = A[l].T @ G            np.dot(A[l].T, G[l], out=dW[l])          backward_nb
      db[l] = G.sum(axis=0)         in the twin that made G: softmax_cross_entropy_nb (last
                                    layer) or hidden_backward_nb (the others)
      G @ W[l].T, hidden_backward   np.dot(..., out=G[l - 1]), hidden_backward_nb
      sgd_momentum                  sgd_momentum_nb
    """
    activation, p = ACTIVATIONS[model.activation], float(model.dropout)
    hyper = np.array([lr, momentum, weight_decay], model.dtype)     # (3,) float32 stays
    keys = [int(key) for key in keys]                               # ints unbox faster
    total, grad = 0.0, np.zeros_like(model.theta)                   # (P,) gradient buffer
    dW, db = layer_views(grad, model.sizes)
    Xp, yp = X[perm], y[perm]                                       # (n, n_in), (n,) in order
    work = {b: _work_arrays(model.sizes, b, p, model.dtype)         # the full batch size and
            for b in {batch_size, len(perm) % batch_size or batch_size}}  # the last one's
    for start in range(0, len(perm), batch_size):
        rows = perm[start:start + batch_size]                        # (b,)
        A, H, M, Z, G = work[len(rows)]
        A[0] = Xp[start:start + batch_size]                          # (b, n_in) a view
        forward_nb(model.W, model.b, A, H, M, Z, rows, keys, activation, p, 1 / (1 - p))
        loss = softmax_cross_entropy_nb(Z, model.b[-1], yp[start:start + batch_size], G[-1],
                                        db[-1])
        if not loss <= max_loss:
            return loss
        backward_nb(model.W, A, H, M, G, dW, db, activation)
        sgd_momentum_nb(model.theta, velocity, grad, hyper, decay)
        total += loss * len(rows)
    return total / len(perm)


def _work_arrays(sizes, batch, p, dtype):
    """What forward_nb and backward_nb fill, for batches of `batch` rows: A [X's batch (set
    per batch), (b, h_1), ...], H and M [(b, h_l)] per hidden layer (without dropout A_l is
    H_l and M_l is ones), Z (b, c), G [(b, h_1), ..., (b, c)]."""
    H = [np.empty((batch, h), dtype) for h in sizes[1:-1]]                # (b, h_l) each
    A = [None] + ([np.empty_like(x) for x in H] if p > 0 else H)
    M = [(np.empty_like if p > 0 else np.ones_like)(x) for x in H]        # (b, h_l) each
    G = [np.empty((batch, h), dtype) for h in sizes[1:]]                  # (b, h_l), (b, c)
    return A, H, M, np.empty((batch, sizes[-1]), dtype), G                # Z (b, c)
