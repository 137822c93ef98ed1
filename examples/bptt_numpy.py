"""Backpropagation through time, written out in NumPy: a SimpleRNN over a whole sequence, and one GRU step.

The forward pass of an Elman RNN with a linear read-out and a squared-error loss::

    a_t = W x_t + U h_{t-1} + b          (b = b_ih + b_hh, as torch and rnnkit store it)
    h_t = tanh(a_t)
    y_t = V h_t + c
    L   = Σ_t ½ ‖y_t − target_t‖²

and its backward pass, the chain rule run from the last step to the first. The one quantity carried
backwards is ``dh_t = ∂L/∂h_t``, the gradient of the loss with respect to the state, which collects two paths:
the read-out at step t, and everything that h_t influences later through h_{t+1}::

    dy_t = y_t − target_t
    dh_t = Vᵀ dy_t + Uᵀ da_{t+1}              (the second term: BPTT's message from the future)
    da_t = dh_t ⊙ (1 − h_t²)                  (tanh' = 1 − tanh²)
    dW += da_t x_tᵀ,  dU += da_t h_{t-1}ᵀ,  db += da_t,  dV += dy_t h_tᵀ,  dc += dy_t

Unrolled, the message from step T to step T−k is a product of k Jacobians ``∂h_t/∂h_{t-1} = diag(1 − h_t²) U``:
when their norms stay below 1 it shrinks geometrically (vanishing gradients), above 1 it grows (exploding).
``main`` prints ‖∂L_T/∂h_{T−k}‖ for a loss on the last step only, to show it. ``rnnkit diagnose gradients``
plots the same quantity for trained and untrained cells.

The GRU step follows ``torch.nn.GRU`` (reset gate applied after U h, gate order r, z, n)::

    r = σ(W_r x + b_ir + U_r h + b_hr),  z = σ(W_z x + b_iz + U_z h + b_hz)
    n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h

Run it: ``python examples/bptt_numpy.py`` checks every gradient against central finite differences and prints
the vanishing and exploding messages; tests/test_bptt_numpy.py checks the gradients against PyTorch's autograd
through rnnkit's own cells (``RNN("rnn")``, ``GRUCell``) to 1e-8 in float64. Needs only NumPy.
"""

from __future__ import annotations

import numpy as np


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


# ---------------------------------------------------------------------------------------------------------
# SimpleRNN over a sequence
# ---------------------------------------------------------------------------------------------------------

def init_rnn(input_size: int, hidden_size: int, output_size: int, rng: np.random.Generator) -> dict:
    """Weights in rnnkit's / torch's layout: W (H, I), U (H, H), b (H,), V (O, H), c (O,)."""
    s = 1.0 / np.sqrt(hidden_size)
    return {"W": rng.uniform(-s, s, (hidden_size, input_size)), "U": rng.uniform(-s, s, (hidden_size, hidden_size)),
            "b": rng.uniform(-s, s, hidden_size), "V": rng.uniform(-s, s, (output_size, hidden_size)),
            "c": rng.uniform(-s, s, output_size)}


def rnn_forward(p: dict, xs: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """xs (T, B, I), h0 (B, H) -> states hs (T+1, B, H) (hs[0] = h0) and outputs ys (T, B, O)."""
    T = xs.shape[0]
    hs = np.empty((T + 1,) + h0.shape)
    hs[0] = h0
    for t in range(T):
        hs[t + 1] = np.tanh(xs[t] @ p["W"].T + hs[t] @ p["U"].T + p["b"])    # (B, H)
    ys = hs[1:] @ p["V"].T + p["c"]                                          # (T, B, O)
    return hs, ys


def rnn_loss(p: dict, xs: np.ndarray, h0: np.ndarray, targets: np.ndarray) -> float:
    _, ys = rnn_forward(p, xs, h0)
    return 0.5 * float(np.sum((ys - targets) ** 2))


def rnn_backward(p: dict, xs: np.ndarray, h0: np.ndarray, targets: np.ndarray) -> tuple[dict, np.ndarray]:
    """Backprop through time: the gradient of every weight, of h0 and of xs (as "xs" and "h0"), and dh (T, B, H):
    ∂L/∂h_t for every step (both paths: the read-out at t and the future)."""
    hs, ys = rnn_forward(p, xs, h0)
    T = xs.shape[0]
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dxs = np.zeros_like(xs)
    dhs = np.zeros_like(hs[1:])
    dys = ys - targets                                          # (T, B, O): ∂L/∂y_t
    grads["V"] = np.einsum("tbo,tbh->oh", dys, hs[1:])
    grads["c"] = dys.sum(axis=(0, 1))
    dh_future = np.zeros_like(h0)                               # Uᵀ da_{t+1}: nothing after the last step
    for t in reversed(range(T)):
        dh = dys[t] @ p["V"] + dh_future                        # (B, H): the two paths into h_t
        dhs[t] = dh
        da = dh * (1.0 - hs[t + 1] ** 2)                        # back through tanh
        grads["W"] += da.T @ xs[t]
        grads["U"] += da.T @ hs[t]                              # hs[t] is h_{t-1}
        grads["b"] += da.sum(axis=0)
        dxs[t] = da @ p["W"]
        dh_future = da @ p["U"]                                 # the message to step t-1
    grads["xs"], grads["h0"] = dxs, dh_future
    return grads, dhs


def gradient_through_time(p: dict, xs: np.ndarray, h0: np.ndarray, target_last: np.ndarray) -> np.ndarray:
    """‖∂L_T/∂h_{T-k}‖ for k = 0 .. T-1, where L_T = ½‖y_T − target‖² reads only the last step: how much of the
    last step's error reaches each earlier state. Mean over the batch. (T,)."""
    hs, ys = rnn_forward(p, xs, h0)
    T = xs.shape[0]
    dh = (ys[-1] - target_last) @ p["V"]                        # ∂L_T/∂h_T
    norms = np.empty(T)
    for k in range(T):
        norms[k] = np.linalg.norm(dh, axis=1).mean()
        da = dh * (1.0 - hs[T - k] ** 2)                        # through tanh at step T-k
        dh = da @ p["U"]                                        # one Jacobian further back: ∂h_t/∂h_{t-1}
    return norms


# ---------------------------------------------------------------------------------------------------------
# One GRU step
# ---------------------------------------------------------------------------------------------------------

def init_gru(input_size: int, hidden_size: int, rng: np.random.Generator) -> dict:
    """torch.nn.GRU's layout: W_ih (3H, I), W_hh (3H, H), b_ih, b_hh (3H,), gates stacked as (r, z, n)."""
    s = 1.0 / np.sqrt(hidden_size)
    H = hidden_size
    return {"W_ih": rng.uniform(-s, s, (3 * H, input_size)), "W_hh": rng.uniform(-s, s, (3 * H, H)),
            "b_ih": rng.uniform(-s, s, 3 * H), "b_hh": rng.uniform(-s, s, 3 * H)}


def gru_step(p: dict, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, dict]:
    """x (B, I), h (B, H) -> h' (B, H) and what the backward pass needs."""
    H = h.shape[1]
    gx = x @ p["W_ih"].T + p["b_ih"]                            # (B, 3H): W x + b_i
    gh = h @ p["W_hh"].T + p["b_hh"]                            # (B, 3H): U h + b_h
    r = sigmoid(gx[:, :H] + gh[:, :H])
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    h_new = (1.0 - z) * n + z * h
    return h_new, {"x": x, "h": h, "r": r, "z": z, "n": n, "gh_n": gh[:, 2 * H:]}


def gru_step_backward(p: dict, cache: dict, dh_new: np.ndarray) -> dict:
    """The gradients of W_ih, W_hh, b_ih, b_hh, x and h from dh_new = ∂L/∂h' (B, H)."""
    x, h, r, z, n, gh_n = (cache[k] for k in ("x", "h", "r", "z", "n", "gh_n"))
    dn = dh_new * (1.0 - z)                                     # h' = (1 - z) n + z h
    dz = dh_new * (h - n)
    dh = dh_new * z                                             # the direct path to h
    dan = dn * (1.0 - n ** 2)                                   # through tanh: ∂L/∂(pre-activation of n)
    dr = dan * gh_n                                             # n's pre-activation holds r ⊙ (U_n h + b_hn)
    dar = dr * r * (1.0 - r)                                    # through σ
    daz = dz * z * (1.0 - z)
    dgx = np.concatenate([dar, daz, dan], axis=1)               # (B, 3H): ∂L/∂(W x + b_i), gates (r, z, n)
    dgh = np.concatenate([dar, daz, dan * r], axis=1)           # ∂L/∂(U h + b_h): r multiplies U_n h + b_hn
    return {"W_ih": dgx.T @ x, "W_hh": dgh.T @ h, "b_ih": dgx.sum(axis=0), "b_hh": dgh.sum(axis=0),
            "x": dgx @ p["W_ih"], "h": dh + dgh @ p["W_hh"]}


# ---------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------

def numerical_gradient(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar f() with respect to every entry of ``array`` (changed in place
    and restored)."""
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        old = array[i]
        array[i] = old + eps
        up = f()
        array[i] = old - eps
        down = f()
        array[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def check_against_finite_differences(seed: int = 0) -> dict[str, float]:
    """Max abs difference between each written-out gradient and finite differences (small sizes)."""
    rng = np.random.default_rng(seed)
    T, B, I, H, O = 6, 2, 3, 4, 2
    p = init_rnn(I, H, O, rng)
    xs, h0, targets = rng.normal(size=(T, B, I)), rng.normal(size=(B, H)), rng.normal(size=(T, B, O))
    grads, _ = rnn_backward(p, xs, h0, targets)
    worst = {}
    for name, array in [*p.items(), ("xs", xs), ("h0", h0)]:
        num = numerical_gradient(lambda: rnn_loss(p, xs, h0, targets), array)
        worst[f"rnn {name}"] = float(np.abs(num - grads[name]).max())
    g = init_gru(I, H, rng)
    x, h, dh_new = rng.normal(size=(B, I)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    out = gru_step_backward(g, gru_step(g, x, h)[1], dh_new)

    def gru_loss():
        return float(np.sum(gru_step(g, x, h)[0] * dh_new))     # ∂/∂h' of this is dh_new
    for name, array in [*g.items(), ("x", x), ("h", h)]:
        worst[f"gru {name}"] = float(np.abs(numerical_gradient(gru_loss, array) - out[name]).max())
    return worst


def main() -> None:
    worst = check_against_finite_differences()
    print("written-out BPTT against central finite differences (max abs difference):")
    for name, diff in worst.items():
        print(f"  {name:12s} {diff:.1e}")
    rng = np.random.default_rng(1)
    for scale in (0.5, 1.0, 3.0):
        p = init_rnn(8, 32, 1, rng)
        p["U"] = scale * np.linalg.qr(rng.normal(size=(32, 32)))[0]       # an orthogonal U, times `scale`
        norms = gradient_through_time(p, rng.normal(size=(40, 16, 8)), np.zeros((16, 32)), np.zeros((16, 1)))
        shown = "  ".join(f"k={k}: {norms[k]:.1e}" for k in (0, 5, 10, 20, 39))
        print(f"‖∂L_T/∂h_(T-k)‖ with U = {scale} x orthogonal: {shown}")


if __name__ == "__main__":
    main()
