"""Each propagation rule's equation in NumPy float64, one sample at a time, in matrix form (zennit-style
naive references): a linear layer is a matrix ``W`` (inputs x outputs; a convolution or pooling
unrolled by :func:`conv_matrix` / :func:`pool_matrix`) and a bias ``b``, ``z_j = sum_i x_i W_ij + b_j``."""
import numpy as np

from keras_xai import rules

EPSILON = 1e-7  # iNNvestigate's safe_divide stabiliser


def safe(z):
    return z + EPSILON * (z == 0)


def pos(a):
    return a * (a > 0)


def neg(a):
    return a * (a < 0)


# --- the equations, one sample, matrix form -------------------------------------------------

def np_z(x, W, b, R, bias=True):
    z = x @ W + (b if bias else 0)
    return x * (W @ (R / safe(z)))


def np_epsilon(x, W, b, R, epsilon, bias=True):
    z = x @ W + (b if bias else 0)
    return x * (W @ (R / (z + epsilon * np.where(z >= 0, 1.0, -1.0))))


def np_gamma(x, W, b, R, gamma, bias=True):
    """The z-rule on W + gamma W+ and b + gamma b+."""
    W_gamma = W + gamma * pos(W)
    z = x @ W_gamma + ((b + gamma * pos(b)) if bias else 0)
    return x * (W_gamma @ (R / safe(z)))


def np_alpha_beta(x, W, b, R, alpha, beta, bias=True):
    """Per-connection form: (x_i w_ij)^+ over their sum; with bias, both denominators get the
    whole bias b_j = b_j^+ + b_j^- (iNNvestigate's convention)."""
    contributions = x[:, None] * W  # (inputs, outputs)
    bias_term = b if bias else 0
    activating = pos(contributions) / safe(pos(contributions).sum(0) + bias_term)
    inhibiting = neg(contributions) / safe(neg(contributions).sum(0) + bias_term)
    return (alpha * activating - beta * inhibiting) @ R


def np_z_plus_fast(x, W, b, R):
    return x * (pos(W) @ (R / safe(x @ pos(W))))


def np_w_square(x, W, b, R):
    return (W**2 / safe((W**2).sum(0))) @ R


def np_flat(x, W, b, R):
    connected = (W != 0).astype(float)  # an unrolled convolution connects only its window
    return (connected / safe(connected.sum(0))) @ R


def np_bounded(x, W, b, R, low, high):
    contributions = x[:, None] * W - low * pos(W) - high * neg(W)
    return (contributions / safe(contributions.sum(0))) @ R


def np_gradient(x, W, b, R):
    return W @ R


# rule object -> NumPy equation
CASES = {
    "z": (rules.ZRule(), np_z),
    "z_ignore_bias": (rules.ZRule(bias=False), lambda *a: np_z(*a, bias=False)),
    "epsilon": (rules.EpsilonRule(0.5), lambda *a: np_epsilon(*a, 0.5)),
    "epsilon_ignore_bias": (rules.EpsilonRule(0.5, bias=False), lambda *a: np_epsilon(*a, 0.5, bias=False)),
    "gamma": (rules.GammaRule(0.25), lambda *a: np_gamma(*a, 0.25)),
    "gamma_large_ignore_bias": (rules.GammaRule(4.0, bias=False), lambda *a: np_gamma(*a, 4.0, bias=False)),
    "alpha1_beta0": (rules.AlphaBetaRule(1, 0), lambda *a: np_alpha_beta(*a, 1, 0)),
    "alpha2_beta1": (rules.AlphaBetaRule(2, 1), lambda *a: np_alpha_beta(*a, 2, 1)),
    "alpha2_beta1_ignore_bias": (rules.AlphaBetaRule(2, 1, bias=False), lambda *a: np_alpha_beta(*a, 2, 1, bias=False)),
    "alpha5_beta4": (rules.AlphaBetaRule(5, 4), lambda *a: np_alpha_beta(*a, 5, 4)),
    "z_plus": (rules.ZPlusRule(), lambda *a: np_alpha_beta(*a, 1, 0, bias=False)),
    "z_plus_fast": (rules.ZPlusFastRule(), np_z_plus_fast),
    "w_square": (rules.WSquareRule(), np_w_square),
    "flat": (rules.FlatRule(), np_flat),
    "bounded": (rules.BoundedRule(-2.0, 3.0), lambda *a: np_bounded(*a, -2.0, 3.0)),
    "gradient": (rules.GradientRule(), np_gradient),
}


def conv_matrix(kernel, height, width, padding):
    """Unroll a stride-1 convolution of an (height, width, c_in) input into a matrix."""
    kh, kw, c_in, c_out = kernel.shape
    top, left = ((kh - 1) // 2, (kw - 1) // 2) if padding == "same" else (0, 0)
    out_h, out_w = (height, width) if padding == "same" else (height - kh + 1, width - kw + 1)
    W = np.zeros((height, width, c_in, out_h, out_w, c_out))
    for oh in range(out_h):
        for ow in range(out_w):
            for i in range(kh):
                for j in range(kw):
                    h, w = oh + i - top, ow + j - left
                    if 0 <= h < height and 0 <= w < width:
                        W[h, w, :, oh, ow, :] = kernel[i, j]
    return W.reshape(height * width * c_in, out_h * out_w * c_out)


def pool_matrix(height, width, channels, pool, stride, padding):
    """Unroll an average pooling (window ``pool``, ``stride``, "valid" or "same" as TensorFlow pads)
    of an (height, width, channels) input: weight ``1/n`` for the ``n`` inputs a window holds."""
    if padding == "same":
        out_h, out_w = -(-height // stride), -(-width // stride)
        top = max((out_h - 1) * stride + pool - height, 0) // 2
        left = max((out_w - 1) * stride + pool - width, 0) // 2
    else:
        out_h, out_w, top, left = (height - pool) // stride + 1, (width - pool) // stride + 1, 0, 0
    W = np.zeros((height, width, channels, out_h, out_w, channels))
    for oh in range(out_h):
        for ow in range(out_w):
            rows = [h for h in range(oh * stride - top, oh * stride - top + pool) if 0 <= h < height]
            cols = [w for w in range(ow * stride - left, ow * stride - left + pool) if 0 <= w < width]
            for c in range(channels):
                for h in rows:
                    for w in cols:
                        W[h, w, c, oh, ow, c] = 1 / (len(rows) * len(cols))
    return W.reshape(height * width * channels, out_h * out_w * channels)
