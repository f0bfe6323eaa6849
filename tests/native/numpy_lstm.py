"""A NumPy float64 LSTM classifier, written from the equations, one sample at a time: the independent
reference of the native engine's LSTM (forward pass, gradient by back-propagation through time, and
LRP for LSTMs as Arras et al. 2017 define it, "signal take all")."""
from __future__ import annotations

import numpy as np

SAFE = 1e-7  # the z-rule's stabiliser of exact zeros (iNNvestigate's safe_divide)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_forward(x, W, U, b):
    """States of one LSTM (Keras' gate order i, f, g, o) over the sequence ``x`` (T, features)."""
    units = U.shape[0]
    h, c = np.zeros(units), np.zeros(units)
    record = {"x": [], "h_before": [], "c_before": [], "i": [], "f": [], "g": [], "o": [], "z_g": [], "c": [], "h": []}
    for x_t in x:
        z = x_t @ W + h @ U + b
        i, f, g, o = sigmoid(z[:units]), sigmoid(z[units:2 * units]), np.tanh(z[2 * units:3 * units]), sigmoid(z[3 * units:])
        record["x"].append(x_t), record["h_before"].append(h), record["c_before"].append(c)
        c = f * c + i * g
        h = o * np.tanh(c)
        for key, value in (("i", i), ("f", f), ("g", g), ("o", o), ("z_g", z[2 * units:3 * units]), ("c", c), ("h", h)):
            record[key].append(value)
    return {key: np.array(value) for key, value in record.items()}


def lstm_gradient(states, W, U, d_h):
    """Back-propagation through time: d_h (T, units) the gradient at every output h_t; returns d x (T, features)."""
    steps, units = d_h.shape
    d_x = np.zeros_like(states["x"])
    carry_h, carry_c = np.zeros(units), np.zeros(units)
    for t in reversed(range(steps)):
        i, f, g, o, c = (states[k][t] for k in ("i", "f", "g", "o", "c"))
        dh = d_h[t] + carry_h
        dc = carry_c + dh * o * (1 - np.tanh(c) ** 2)
        dz = np.concatenate([dc * g * i * (1 - i), dc * states["c_before"][t] * f * (1 - f), dc * i * (1 - g ** 2),
                             dh * np.tanh(c) * o * (1 - o)])
        d_x[t] = W @ dz
        carry_h, carry_c = U @ dz, dc * f
    return d_x


def stabilised(z, epsilon):
    """The denominator of the epsilon rule (``epsilon=None``: the z-rule's)."""
    if epsilon is None:
        return z + SAFE * (z == 0)
    return z + epsilon * np.where(z >= 0, 1.0, -1.0)


def lrp_lstm(states, W, U, R_h, epsilon=None, bias=True, b=None):
    """LRP for one LSTM: ``R_h`` (T, units) the relevance at every output h_t; returns the relevance at x.

    Relevance of h_t goes to c_t; c_t = f c_{t-1} + i g splits in proportion to its two terms (the gates
    get nothing); g's share passes tanh to z_g = x W_g + h_{t-1} U_g + b_g, split in proportion to
    x_i W_g[i] and h_j U_g[j]."""
    steps, units = R_h.shape
    W_g, U_g = W[:, 2 * units:3 * units], U[:, 2 * units:3 * units]
    R_x = np.zeros_like(states["x"])
    carry_h, carry_c = np.zeros(units), np.zeros(units)
    for t in reversed(range(steps)):
        R_c = R_h[t] + carry_h + carry_c
        c = states["c"][t]
        share = R_c / stabilised(c, epsilon)
        carry_c = states["f"][t] * states["c_before"][t] * share
        R_g = states["i"][t] * states["g"][t] * share
        z_g = states["z_g"][t] if bias else states["z_g"][t] - b[2 * units:3 * units]
        scaled = R_g / stabilised(z_g, epsilon)
        R_x[t] = states["x"][t] * (W_g @ scaled)
        carry_h = states["h_before"][t] * (U_g @ scaled)
    return R_x


class NumpyLSTMClassifier:
    """Input (T, features) -> LSTM(sequences) -> LSTM(last) -> Dense, from a Keras model's weights."""

    def __init__(self, model):
        (self.W1, self.U1, self.b1), (self.W2, self.U2, self.b2), (self.Wd, self.bd) = (
            [w.astype(np.float64) for w in layer.get_weights()] for layer in model.layers if layer.get_weights())

    def forward(self, x):
        first = lstm_forward(x, self.W1, self.U1, self.b1)
        second = lstm_forward(first["h"], self.W2, self.U2, self.b2)
        return first, second, second["h"][-1] @ self.Wd + self.bd

    def gradient(self, x, unit):
        first, second, _ = self.forward(x)
        d_h2 = np.zeros_like(second["h"])
        d_h2[-1] = self.Wd[:, unit]
        d_h1 = lstm_gradient(second, self.W2, self.U2, d_h2)
        return lstm_gradient(first, self.W1, self.U1, d_h1)

    def lrp(self, x, unit, epsilon=None, bias=True):
        """From the value of logit ``unit``, through the Dense layer and both LSTMs to the input."""
        first, second, logits = self.forward(x)
        z = logits if bias else logits - self.bd
        R_h2 = np.zeros_like(second["h"])
        R_h2[-1] = second["h"][-1] * (self.Wd[:, unit] * logits[unit] / stabilised(z[unit], epsilon))
        R_h1 = lrp_lstm(second, self.W2, self.U2, R_h2, epsilon, bias, self.b2)
        return lrp_lstm(first, self.W1, self.U1, R_h1, epsilon, bias, self.b1)

    def lrp_from_lstm2(self, x, relevance, epsilon=None):
        """Relevance injected at lstm2's output (units,), to the input."""
        first, second, _ = self.forward(x)
        R_h2 = np.zeros_like(second["h"])
        R_h2[-1] = relevance
        R_h1 = lrp_lstm(second, self.W2, self.U2, R_h2, epsilon)
        return R_h1, lrp_lstm(first, self.W1, self.U1, R_h1, epsilon)
