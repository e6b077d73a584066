"""nn.py - a multilayer perceptron trained by mini-batch SGD, backpropagation written out.

The model the searches tune; its hyperparameters are BLEND: Batch size, Learning rate,
Epochs, Number of layers, Dropout rate.

The forward pass, softmax cross-entropy, backpropagation and the SGD update are plain
NumPy functions: the code to read. Each hot step has a Numba twin right after it that
fuses the elementwise work, and one compiled function runs a whole epoch, calling numpy's
own BLAS for the matrix products (a Python loop per mini-batch costs more than the
arithmetic of a small net). Without numba, or when numpy's BLAS cannot be found, the NumPy
functions run. With device="gpu" the NumPy functions run on CuPy arrays.
The first training run of a process compiles that epoch function (about 2 s; README.md
has the figures) and Numba caches it in __pycache__, so later processes load it instead.

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
import contextlib
import ctypes
import math
import os
import threading

import numpy as np

try:
    import numba
    njit = numba.njit(cache=True)
    njit_inline = numba.njit(cache=True, inline="always")  # pasted into the epoch: compiles
except ImportError:                                         # faster than separate calls
    numba = None

    def njit(f):                                            # the NumPy functions run instead
        return f
    njit_inline = njit

try:
    import cupy
except ImportError:
    cupy = None

# n: samples  b: batch size  h: units in a layer  c: classes  P: number of parameters
# L: weight layers. sizes = [n_in, h_1, ..., h_{L-1}, c]. Layer l maps A_{l-1} -> A_l:
# Z_l = A_{l-1} W_l + b_l (pre-activation), H_l = f(Z_l), A_l = H_l * M_l (dropout mask).
# All parameters live in one flat buffer theta (P,); W[l] (h_in, h_out) and b[l] are views.

ACTIVATIONS = {"relu": 0, "tanh": 1}

# ----------------------------------------------------------------------------- data


def make_spirals(n_per_class=200, n_classes=3, noise=0.2, seed=0):
    """Interleaved spiral arms, one per class (after the CS231n toy data set), seeded.

    Point i of arm k: radius r in [0.05, 1], angle 2 pi k / n_classes + 3 pi r + noise.
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


def _gpu_available():
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:                                 # no driver or no device
        return False

# ----------------------------------------------------------------------------- forward
# Each step: the NumPy reference, then its Numba twin (same result, fused loops, in place).
# The twins work like BLAS, on blocks of flat buffers: "the (b, h) block of Z at `at`" is
# Z[at : at + b * h] read row-major, so element [i, j] is Z[at + i * h + j]. The compiled
# epoch then passes whole buffers and offsets, never views: each view it made added to
# Numba's compile time. Offsets and sizes become unsigned (np.uint64) on the way in:
# Numba wraps a negative index around, and the check for one, in every access, would keep
# LLVM from vectorising the loops.


def hidden_forward(Z, b, activation):
    """H = f(Z + b), f = relu (max(z, 0)) or tanh.  Z: (b, h)  b: (h,)  returns: (b, h)"""
    Z = Z + b
    return np.maximum(Z, 0) if activation == "relu" else np.tanh(Z)


@njit_inline
def hidden_forward_nb(Z, M, A, at, b, h, theta, bias_at, rows, start, act, p, key):
    """Twin of hidden_forward, in place, fused with inverted dropout: the (b, h) block of Z
    at `at` becomes H = f(Z + bias), bias = theta[bias_at : bias_at + h]; if p > 0, the same
    blocks of M and A get M = dropout_mask(key, rows[start : start + b], h, p) and H * M."""
    at, b, h, bias_at = np.uint64(at), np.uint64(b), np.uint64(h), np.uint64(bias_at)
    start = np.uint64(start)
    for i in range(b):
        counter = np.uint64(key) + np.uint64(rows[start + i]) * np.uint64(h)
        for j in range(h):
            k = at + i * h + j                                      # [i, j] of the block
            z = Z[k] + theta[bias_at + j]
            Z[k] = (0.0 if z < 0 else z) if act == 0 else np.tanh(z)   # NaN stays NaN
            if p > 0:
                M[k] = (_uniform_nb(counter + np.uint64(j)) >= p) / (1 - p)
                A[k] = Z[k] * M[k]


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


@njit_inline
def softmax_cross_entropy_nb(G, b, c, y, theta, bias_at, grad):
    """Twin of softmax_cross_entropy(Z + bias, y), in place: the (b, c) block of G at 0
    holds Z on entry and dL/dZ on exit; bias = theta[bias_at : bias_at + c], y (>= b,);
    db = column sums of dL/dZ go to grad[bias_at : bias_at + c]. Returns the loss."""
    b, c, bias_at, loss = np.uint64(b), np.uint64(c), np.uint64(bias_at), 0.0
    for k in range(c):
        grad[bias_at + k] = 0
    for i in range(b):
        row = i * c                                                 # G[row + k] = [i, k]
        true = np.uint64(y[i])
        z_true = G[row + true] + theta[bias_at + true]              # read before G changes
        top = G[row] + theta[bias_at]
        for k in range(1, c):
            z = G[row + k] + theta[bias_at + k]
            top = z if z > top else top
        total = 0.0
        for k in range(c):
            G[row + k] = math.exp(G[row + k] + theta[bias_at + k] - top)
            total += G[row + k]
        loss += math.log(total) + top - z_true
        for k in range(c):
            G[row + k] = (G[row + k] / total - (k == true)) / b
            grad[bias_at + k] += G[row + k]
    return loss / b


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

# ----------------------------------------------------------------------------- backward


def hidden_backward(G, H, mask, activation):
    """dL/dZ_l from dL/dA_l: through the mask, then f'(Z) read off H = f(Z):
    relu'(z) = [z > 0] = [H > 0],  tanh'(z) = 1 - tanh(z)^2 = 1 - H^2.  G, H: (b, h)"""
    if mask is not None:
        G = G * mask
    return G * (H > 0) if activation == "relu" else G * (1 - H * H)


@njit_inline
def hidden_backward_nb(G, g_at, H, M, at, b, h, act, grad, bias_at):
    """Twin of hidden_backward, in place on the (b, h) block of G at g_at, with H and M the
    blocks at `at` (M all ones without dropout: one loop, not two to compile);
    db = column sums go to grad[bias_at : bias_at + h]."""
    g_at, at, b, h = np.uint64(g_at), np.uint64(at), np.uint64(b), np.uint64(h)
    bias_at = np.uint64(bias_at)
    for j in range(h):
        grad[bias_at + j] = 0
    for i in range(b):
        for j in range(h):
            k = i * h + j                                           # [i, j] of the block
            g = G[g_at + k] * M[at + k]
            one = np.float32(1)                 # an int 1 would turn float32 into float64
            g = g * (H[at + k] > 0) if act == 0 else g * (one - H[at + k] * H[at + k])
            G[g_at + k] = g
            grad[bias_at + j] += g


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


@njit_inline
def sgd_momentum_nb(theta, velocity, grad, lr, momentum, weight_decay, decay):
    """Twin of sgd_momentum: one pass over the flat parameter buffer."""
    for i in range(theta.shape[0]):
        velocity[i] = momentum * velocity[i] - lr * (grad[i] + weight_decay * decay[i] * theta[i])
        theta[i] += velocity[i]

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
    """The key of one layer's masks in one epoch (a Python int < 2^64)."""
    counter = ((seed * 1_000_003 + epoch) * 1_000_003 + layer) % 2 ** 64   # any seed fits
    return int(splitmix64(np.array([counter], _U64))[0] % _U64(2 ** 63))


def dropout_mask(key, rows, h, p, dtype, xp=np):
    """Inverted dropout (Srivastava et al. 2014): 0 with probability p, else 1 / (1 - p).
    rows: (b,) sample indices  returns: (b, h)"""
    counter = (_U64(key) + xp.asarray(rows).astype(_U64)[:, None] * _U64(h)
               + xp.arange(h, dtype=_U64)[None, :])                # (b, h)
    u = (splitmix64(counter) >> _U64(11)) * (1.0 / 2 ** 53)         # (b, h) uniform [0, 1)
    return ((u >= p) / (1 - p)).astype(dtype)


@njit_inline
def _uniform_nb(z):
    """Twin of the uniform draw in dropout_mask for one uint64 counter."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 2 ** 53)

# ----------------------------------------------------------------------------- one epoch


def _epoch_numpy(model, X, y, perm, batch_size, lr, momentum, weight_decay, velocity,
                 decay, keys, max_loss):
    """One epoch with the reference functions (also the GPU path). Returns the mean loss,
    or, as soon as a batch loss is not <= max_loss (NaN, inf, exploding), that loss."""
    xp, total = model.xp, 0.0
    dW_all = xp.zeros_like(model.theta)                             # (P,) gradient buffer
    dW, db = layer_views(dW_all, model.sizes)
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
        for target, grad in zip(dW + db, grads_W + grads_b):     # into the flat buffer
            target[...] = grad
        sgd_momentum(model.theta, velocity, dW_all, lr, momentum, weight_decay, decay)
        total += loss * len(rows)
    return total / len(perm)


ROW_MAJOR, N, T = 101, 111, 112  # CBLAS's codes: row-major, a matrix as it is, transposed


@njit
def _epoch_nb(theta, velocity, grad, decay, sizes, w_at, b_at, X, y, perm, batch, lr,
              momentum, weight_decay, act, p, keys, max_loss, width, A_all, H_all, M_all, G,
              yb, gemm):
    """The same epoch as _epoch_numpy in one compiled call: the twins above for the
    elementwise work, gemm (numpy's BLAS, through ctypes) for the matrix products:
    gemm(order, op(A), op(B), m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) computes
    C (m, n) = alpha op(A) op(B) + beta C, each matrix given by its address and row stride.
    W_l starts at theta[w_at[l]], b_l at theta[b_at[l]] (grad has theta's layout). The work
    buffers (from _epoch_buffers) are flat, in blocks of width = batch * max(sizes): block l
    of A_all holds the input of layer l (block 0: the batch of X), block l of H_all and M_all
    that layer's H and mask (p = 0: A_all is H_all and M_all ones); G holds dL/dZ of one
    layer in one half and of the layer below in the other."""
    L, n, n_in = len(sizes) - 1, len(perm), np.uint64(sizes[0])
    c, total = sizes[L], 0.0
    size = theta.itemsize                                           # BLAS takes addresses:
    theta_, grad_, A_, H_, G_ = (theta.ctypes.data, grad.ctypes.data,   # x_ + at * size is
                                 A_all.ctypes.data, H_all.ctypes.data, G.ctypes.data)  # &x[at]
    for start in range(0, n, batch):
        b = batch if start + batch <= n else n - start             # the last batch may be short
        for i in range(b):                                          # gather the batch
            yb[i] = y[perm[start + i]]
            for j in range(n_in):
                A_all[np.uint64(i) * n_in + j] = X[perm[start + i], j]
        for l in range(L):                                          # forward
            h_in, h_out = sizes[l], sizes[l + 1]
            at = (l + 1) * width if l < L - 1 else 0                # Z's block in H_all, or
            Z = (H_ if l < L - 1 else G_) + at * size               # in G for the logits
            gemm(ROW_MAJOR, N, N, b, h_out, h_in, 1.0, A_ + l * width * size, h_in,
                 theta_ + w_at[l] * size, h_out, 0.0, Z, h_out)      # Z = A W
            if l < L - 1:                                           # bias, f, dropout
                hidden_forward_nb(H_all, M_all, A_all, at, b, h_out, theta, b_at[l], perm, start,
                                  act, p, keys[l])
        loss = softmax_cross_entropy_nb(G, b, c, yb, theta, b_at[L - 1], grad)
        if not loss <= max_loss:                                    # diverged: stop now
            return loss
        total += loss * b
        half = 0                                                    # dL/dZ of layer l at G[half]
        for l in range(L - 1, -1, -1):                              # backward
            h_in, h_out = sizes[l], sizes[l + 1]
            gemm(ROW_MAJOR, T, N, h_in, h_out, b, 1.0, A_ + l * width * size, h_in,
                 G_ + half * size, h_out, 0.0, grad_ + w_at[l] * size, h_out)  # dW = A^T G
            if l == 0:
                break
            gemm(ROW_MAJOR, N, T, b, h_in, h_out, 1.0, G_ + half * size, h_out,
                 theta_ + w_at[l] * size, h_out, 0.0, G_ + (width - half) * size, h_in)  # G W^T
            half = width - half
            hidden_backward_nb(G, half, H_all, M_all, l * width, b, h_in, act, grad, b_at[l - 1])
        sgd_momentum_nb(theta, velocity, grad, lr, momentum, weight_decay, decay)
    return total / n


def _epoch_buffers(sizes, batch, p, dtype):
    """Work buffers of _epoch_nb (see there), and where each W and b starts in theta."""
    sizes = np.array(sizes)
    width, L = batch * sizes.max(), len(sizes) - 1
    w_at = np.cumsum([0] + [a * b + b for a, b in zip(sizes[:-1], sizes[1:])])[:-1]  # (L,)
    H_all = np.empty(L * width, dtype)
    return dict(sizes=sizes, w_at=w_at, b_at=w_at + sizes[:-1] * sizes[1:], width=int(width),
                H_all=H_all, A_all=np.empty(L * width, dtype) if p > 0 else H_all,
                M_all=(np.empty if p > 0 else np.ones)(L * width, dtype),
                G=np.empty(2 * width, dtype),
                yb=np.empty(batch, np.int64))


def _find_blas():
    """numpy's own BLAS through ctypes: ({dtype: cblas gemm}, (get, set) of its thread count
    or None), or ({}, None) where it is not found. NumPy's wheels bundle OpenBLAS as
    libscipy_openblas (64-bit ints: symbol suffix 64_)."""
    here = os.path.dirname(np.__file__)
    for folder in (os.path.join(here, os.pardir, "numpy.libs"), os.path.join(here, ".dylibs")):
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        for name in (n for n in names if "openblas" in n):
            try:
                lib = ctypes.CDLL(os.path.join(folder, name))
            except OSError:
                continue
            for prefix, suffix, integer in [("scipy_cblas_", "64_", ctypes.c_int64),
                                            ("scipy_cblas_", "", ctypes.c_int),
                                            ("cblas_", "", ctypes.c_int)]:
                found = {}
                for dtype, real in [(np.float32, ctypes.c_float), (np.float64, ctypes.c_double)]:
                    f = getattr(lib, f"{prefix}{'s' if dtype is np.float32 else 'd'}gemm{suffix}",
                                None)
                    if f is not None:
                        f.restype = None
                        address = ctypes.c_size_t           # takes numpy ints, unlike c_void_p
                        f.argtypes = ([ctypes.c_int] * 3 + [integer] * 3 + [real, address,
                                      integer, address, integer, real, address,
                                      integer])
                        found[np.dtype(dtype)] = f
                if len(found) == 2:
                    get, set_ = (getattr(lib, f"{prefix.replace('cblas', 'openblas')}{verb}"
                                          f"_num_threads{suffix}", None) for verb in ("get", "set"))
                    return found, (get, set_) if get and set_ else None
    return {}, None


GEMM, BLAS_THREADS = _find_blas() if numba is not None else ({}, None)
SMALL_PRODUCT = 2 ** 22  # multiply-adds: below this for every product of an epoch, BLAS runs
#  on one thread (a second thread gains little on products this small, and on a shared
#  machine it waits whenever the other core stalls; README.md, the MLP section)
_blas_lock, _blas = threading.Lock(), {"users": 0, "threads": 1}


@contextlib.contextmanager
def _single_threaded_blas(when):
    """Hold numpy's BLAS to one thread inside the block when `when`, then restore its thread
    count (after the last of several threads that entered). Like scikit-learn's use of
    threadpoolctl; other threads' BLAS calls meanwhile run on one thread too."""
    if not when or BLAS_THREADS is None:
        yield
        return
    get, set_ = BLAS_THREADS
    with _blas_lock:
        if _blas["users"] == 0:
            _blas["threads"] = get()
            set_(1)
        _blas["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas["users"] -= 1
            if _blas["users"] == 0:
                set_(_blas["threads"])
DIVERGED = 100  # a batch loss above 100 x log(c) counts as diverged: the stable log-sum-exp
#                 keeps an exploding loss finite (1e4 and more), so NaN/inf alone miss it
USE_NUMBA = bool(GEMM)          # the compiled epoch; set False to run the NumPy reference

# ----------------------------------------------------------------------------- training


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
    returns: {"loss": [per epoch], "val_loss": [...], "val_accuracy": [...], "diverged": bool}
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
    buffers = _epoch_buffers(model.sizes, batch, model.dropout, model.dtype)
    max_loss = DIVERGED * math.log(max(model.sizes[-1], 2))        # see DIVERGED
    small = batch * max(a * b for a, b in zip(model.sizes[:-1], model.sizes[1:])) < SMALL_PRODUCT
    with np.errstate(all="ignore"):                                 # divergence is reported
        for epoch in range(model.epochs_trained, model.epochs_trained + int(epochs)):
            model.epochs_trained += 1
            perm = np.random.default_rng([seed, epoch]).permutation(n)  # (n,)
            keys = np.array([mask_key(seed, epoch, l) for l in range(len(model.sizes) - 2)]
                            or [0], dtype=np.uint64)
            if USE_NUMBA and xp is np:
                real = model.dtype.type             # scalars in the arrays' dtype: float32 SIMD
                with _single_threaded_blas(small):
                    loss = _epoch_nb(model.theta, velocity, np.zeros_like(model.theta), decay,
                                     X=Xd, y=yd, perm=perm, batch=batch, lr=real(lr),
                                     momentum=real(momentum), weight_decay=real(weight_decay),
                                     act=ACTIVATIONS[model.activation], p=real(model.dropout),
                                     keys=keys, max_loss=max_loss, gemm=GEMM[model.dtype],
                                     **buffers)
            else:
                loss = _epoch_numpy(model, Xd, yd, xp.asarray(perm), batch, lr, momentum,
                                    weight_decay, velocity, decay, keys, max_loss)
            history["loss"].append(float(loss))
            if not loss <= max_loss:
                history["diverged"] = True
                break
            if X_val is not None:
                P = model.predict_proba(X_val_checked)
                true_p = P[np.arange(len(y_val_np)), y_val_np]
                history["val_loss"].append(float(-np.mean(np.log(np.maximum(true_p, 1e-300)))))
                history["val_accuracy"].append(float(np.mean(P.argmax(axis=1) == y_val_np)))
    return history


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
