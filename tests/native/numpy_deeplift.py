"""A NumPy float64 DeepLIFT for Dense -> activation -> ... -> Dense chains, following deeplift
0.6.13's rules (Rescale, RevealCancel) and the paper's ablation (decoupled W+ / W- chains): the
independent reference of the native tests and of the deeplift engine's tests."""
from __future__ import annotations

import numpy as np
from tensorflow import keras

from keras_xai.deeplift import NEAR_ZERO


def np_split(d):
    return d * (d > 0), d * (d < 0)


def np_pseudocount(t):
    small = np.abs(t) < 0.5 * NEAR_ZERO
    return t + NEAR_ZERO * (small & (t >= 0)) - NEAR_ZERO * (small & (t < 0))


def relu(v):
    return np.maximum(v, 0)


#: Activation -> (function, derivative) for the NumPy reference.
ACTIVATIONS = {"relu": (relu, lambda v: (v > 0).astype(float)), "tanh": (np.tanh, lambda v: 1 - np.tanh(v) ** 2)}


def np_linear_rule(W, difference, m_pos, m_neg, ablation):
    """Eq. 13 for ``z = a W``: the (positive, negative) multipliers of each input. deeplift gives
    both the same value, chosen by the sign of the input's difference from the reference; the
    ablation decouples the chains: ``(W+ m+, W- m-)`` for every input."""
    Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
    if ablation:
        return m_pos @ Wp.T, m_neg @ Wn.T
    same = m_pos @ Wp.T + m_neg @ Wn.T
    above, below, at = difference > 0, difference < 0, difference == 0
    cross = m_pos @ Wn.T + m_neg @ Wp.T
    both = above * same + below * cross + at * ((0.5 * (m_pos + m_neg)) @ W.T)
    return both, both


class NumpyDeepLift:
    """DeepLIFT on ``Dense -> ReLU -> ... -> Dense`` in float64, stage by stage: stage 0 is the
    input, then each Dense output and each ReLU output."""

    def __init__(self, layers, mode, ablation, activation="relu"):
        self.layers, self.mode, self.ablation = layers, mode, ablation
        self.f, self.df = ACTIVATIONS[activation]

    def forward(self, x, ref):
        """Per stage: (activation, reference activation, positive, negative contributions)."""
        stages = [(x, ref, *np_split(x - ref))]
        a, a0 = x, ref
        for i, (W, b) in enumerate(self.layers):
            dp, dn = np_split(a - a0)
            Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
            z, z0 = a @ W + b, a0 @ W + b
            cp, cn = dp @ Wp + dn @ Wn, dn @ Wp + dp @ Wn
            stages.append((z, z0, cp, cn))
            if i == len(self.layers) - 1:
                break
            f = self.f
            a, a0 = f(z), f(z0)
            if self.mode == "rescale":
                factor = self.rescale_factor(z, z0)
                stages.append((a, a0, cp * factor, cn * factor))
            else:
                p, n = np_pseudocount(cp), np_pseudocount(cn)
                new_p = 0.5 * ((f(z0 + p) - f(z0)) + (f(z0 + n + p) - f(z0 + n)))
                new_n = 0.5 * ((f(z0 + n) - f(z0)) + (f(z0 + p + n) - f(z0 + p)))
                stages.append((a, a0, new_p, new_n))
        return stages

    def rescale_factor(self, z, z0):
        """dy/dz, or the derivative at the reference where |dz| < 1e-7 (deeplift takes the derivative
        at the reference *output* for sigmoid/tanh, a slip we do not copy)."""
        dz = z - z0
        near = np.abs(dz) < NEAR_ZERO
        return np.where(near, self.df(z0), (self.f(z) - self.f(z0)) / np.where(near, 1.0, dz))

    def backward(self, stages, start, vector):
        """Multiplier pairs at every stage at or below ``start`` (both set to ``vector`` there)."""
        m_pos = m_neg = vector
        pairs = {start: (m_pos, m_neg)}
        for s in range(start, 0, -1):
            if s % 2 == 1:  # a Dense output
                W = self.layers[s // 2][0]
                below = stages[s - 1]
                m_pos, m_neg = np_linear_rule(W, below[0] - below[1], m_pos, m_neg, self.ablation)
            elif self.mode == "rescale":
                z, z0 = stages[s - 1][:2]
                factor = self.rescale_factor(z, z0)
                m_pos, m_neg = factor * m_pos, factor * m_neg
            else:
                cp_in, cn_in = stages[s - 1][2:]
                cp_out, cn_out = stages[s][2:]
                m_pos, m_neg = cp_out / np_pseudocount(cp_in) * m_pos, cn_out / np_pseudocount(cn_in) * m_neg
            pairs[s - 1] = (m_pos, m_neg)
        return pairs

    @staticmethod
    def reported(stages, pairs):
        """Stage -> multiplier of the stage's difference (input: its contributions)."""
        out = {}
        for s, (m_pos, m_neg) in pairs.items():
            a, a0, cp, cn = stages[s]
            d = a - a0
            if s == 0:
                out[s] = m_pos * cp + m_neg * cn
            else:
                out[s] = np.where(d > 0, m_pos, np.where(d < 0, m_neg, 0.5 * (m_pos + m_neg)))
        return out



def chain_weights(model: keras.Model) -> list:
    """(kernel, bias) of every Dense layer of ``model``, float64, in order."""
    return [(l.kernel.numpy().astype(np.float64), l.bias.numpy().astype(np.float64))
            for l in model.layers if isinstance(l, keras.layers.Dense)]


def input_contributions(model: keras.Model, x, reference, unit: int, mode: str, ablation: bool) -> np.ndarray:
    """The input's contributions to output ``unit`` (what ``analyze`` returns) for a Dense chain."""
    numpy_dl = NumpyDeepLift(chain_weights(model), mode, ablation)
    stages = numpy_dl.forward(np.asarray(x, np.float64), np.asarray(reference, np.float64))
    n_outputs = model.outputs[0].shape[-1]
    one_hot = np.zeros((len(x), n_outputs))
    one_hot[:, unit] = 1.0
    return numpy_dl.reported(stages, numpy_dl.backward(stages, len(stages) - 1, one_hot))[0]
