"""A NumPy float64 LSTM classifier, written from the equations, one sample at a time: the independent
reference of the native engine's LSTM (forward pass, gradient by back-propagation through time, LRP for
LSTMs as Arras et al. 2017 define it, "signal take all", and DeepLIFT-Rescale with the two-player split
of every product's delta)."""
from __future__ import annotations

import numpy as np

SAFE = 1e-7  # the z-rule's stabiliser of exact zeros (iNNvestigate's safe_divide)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_forward(x, W, U, b):
    """States of one LSTM (Keras' gate order i, f, g, o) over the sequence ``x`` (T, features)."""
    units = U.shape[0]
    h, c = np.zeros(units), np.zeros(units)
    record = {"x": [], "h_before": [], "c_before": [], "z": [], "i": [], "f": [], "g": [], "o": [], "z_g": [], "c": [],
              "h": []}
    for x_t in x:
        z = x_t @ W + h @ U + b
        i, f, g, o = sigmoid(z[:units]), sigmoid(z[units:2 * units]), np.tanh(z[2 * units:3 * units]), sigmoid(z[3 * units:])
        record["x"].append(x_t), record["h_before"].append(h), record["c_before"].append(c), record["z"].append(z)
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


def secant(function, derivative, z, z0):
    """Rescale's factor: (f(z) - f(z0)) / (z - z0), f'(z0) where |z - z0| < 1e-7."""
    delta = z - z0
    small = np.abs(delta) < 1e-7
    return np.where(small, derivative(z0), (function(z) - function(z0)) / np.where(small, 1.0, delta))


def _sigmoid_derivative(z):
    return sigmoid(z) * (1 - sigmoid(z))


def _tanh_derivative(z):
    return 1 - np.tanh(z) ** 2


def lstm_deeplift(states, reference, W, U, m_h):
    """DeepLIFT-Rescale multipliers through one LSTM: ``m_h`` (T, units) the multiplier at every output h_t,
    ``reference`` the states on the reference input; returns the multipliers at x (T, features).

    Products a b pass m a_mean to b and m b_mean to a (mean of the input's and the reference's values);
    sigmoid, tanh: Rescale; z = x W + h U + b: the transpose."""
    steps, units = m_h.shape
    m_x = np.zeros_like(states["x"])
    carry_h, carry_c = np.zeros(units), np.zeros(units)
    mean = {key: (states[key] + reference[key]) / 2 for key in ("i", "f", "g", "o", "c_before")}
    tanh_c_mean = (np.tanh(states["c"]) + np.tanh(reference["c"])) / 2
    for t in reversed(range(steps)):
        mh = m_h[t] + carry_h
        m_o = mh * tanh_c_mean[t]
        mc = carry_c + mh * mean["o"][t] * secant(np.tanh, _tanh_derivative, states["c"][t], reference["c"][t])
        z, z0 = states["z"][t], reference["z"][t]
        blocks = [slice(k * units, (k + 1) * units) for k in range(4)]  # i, f, g, o
        m_z = np.concatenate([
            mc * mean["g"][t] * secant(sigmoid, _sigmoid_derivative, z[blocks[0]], z0[blocks[0]]),
            mc * mean["c_before"][t] * secant(sigmoid, _sigmoid_derivative, z[blocks[1]], z0[blocks[1]]),
            mc * mean["i"][t] * secant(np.tanh, _tanh_derivative, z[blocks[2]], z0[blocks[2]]),
            m_o * secant(sigmoid, _sigmoid_derivative, z[blocks[3]], z0[blocks[3]])])
        m_x[t] = W @ m_z
        carry_h, carry_c = U @ m_z, mc * mean["f"][t]
    return m_x


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

    def deeplift(self, x, unit, reference=None):
        """DeepLIFT-Rescale contributions of x (T, features) to logit ``unit`` minus its value at
        ``reference`` (zeros by default): multipliers times (x - reference)."""
        reference = np.zeros_like(x) if reference is None else reference
        first, second, _ = self.forward(x)
        first0, second0, _ = self.forward(reference)
        m_h2 = np.zeros_like(second["h"])
        m_h2[-1] = self.Wd[:, unit]
        m_h1 = lstm_deeplift(second, second0, self.W2, self.U2, m_h2)
        return lstm_deeplift(first, first0, self.W1, self.U1, m_h1) * (x - reference)

    def lrp_from_lstm2(self, x, relevance, epsilon=None):
        """Relevance injected at lstm2's output (units,), to the input."""
        first, second, _ = self.forward(x)
        R_h2 = np.zeros_like(second["h"])
        R_h2[-1] = relevance
        R_h1 = lrp_lstm(second, self.W2, self.U2, R_h2, epsilon)
        return R_h1, lrp_lstm(first, self.W1, self.U1, R_h1, epsilon)
