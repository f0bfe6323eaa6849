"""``python -m lstm_svd``: the LSTM MNIST thesis, reproduced and finished, as files (JSON/CSV numbers,
PNG figures, report.md).

This module is the command line: the options and their checks, the full and ``--quick`` defaults, the
``--help`` text and :func:`main`. What the commands do is :mod:`lstm_svd.commands`."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from architectures.cli_types import (existing_file, int_in_range, int_list, name_list, output_folder, positive_int,
                                     seed_int)
from architectures.data import DataNotFoundError
from architectures.run_lock import RunLock, RunLockedError
from architectures.training import RECIPES
from architectures.weights import WeightsFileError

from . import experiments
from .commands import COMMANDS, run_commands
from .context import Context

# Settings that differ between the full protocol and --quick (the main job's few-minute run).
FULL = dict(tsne_samples=5000, ae_epochs=5, ae_train=None, vae_epochs=20, vae_train=None, sample_epochs=10,
            decoder_epochs=20, gate_test=None, gate_families=("first-k", "all-except-one"), trajectory="thesis")
QUICK = dict(tsne_samples=1000, ae_epochs=1, ae_train=5000, vae_epochs=4, vae_train=10000, sample_epochs=3,
             decoder_epochs=5, gate_test=2000, gate_families=("first-k",), trajectory="none")

# What the options are checked against at parse time.
MNIST_TRAIN, MNIST_TEST = 60000, 10000  # images in MNIST's two splits
DIRECTIONS = 10  # rows of W^T and singular directions of the 10 x 10 output layer
MIN_POINTS = 6  # fewest points of a t-SNE map and its 5-nearest-neighbour score (a point and 5 neighbours)
CLASSIFIER_RECIPES = sorted(RECIPES["lstm_classifier"])


DESCRIPTION = """\
Reproduce the LSTM MNIST thesis (SVD of the output layer of a 2-layer LSTM classifier) and do its
proposed next step.

commands (one or more, run in this order; 'all' runs every one):
  train         test accuracy (thesis 97.23%), confusion matrices (train after each epoch, test),
                misclassified digits of the most confused pairs
  output-layer  rows of W^T and b, Gramian (cosines), angles, singular values, PCA of y
  lowrank       W^T rebuilt from first-k, last-k, all-except-one, just-one and --keep directions
                (bias kept); table 4.1; rank-1 envelopes
  embed         t-SNE of the hidden states h (subsampled: --tsne-samples per split)
  autoencoder   LSTM autoencoder (does it collapse to the mean image?)
  vae           LSTM VAE: reconstructions, t-SNE of latents, 20x20 samples, classifier trained on
                decoder samples (thesis 92.90%)
  gates         low-rank gate blocks W_i, W_f, W_g (Keras c), W_o of both LSTM layers (input and
                recurrent kernels), and a decoder h -> image to see what they do

The classifier comes from the project's weight cache (trained on first use). Its hidden states are
computed once and cached; every low-rank output layer is then one matrix product. Results go to
--out: JSON/CSV (every number behind every figure), PNG figures and report.md (each thesis finding
next to ours). --quick runs everything in a few minutes (small t-SNE subsample, few autoencoder/VAE
epochs, a test subset for the gates, no per-epoch retraining); report.md says so.
"""


def _mode_help(text: str, name: str, unit: str = "") -> str:
    """Help text ending in the full and the quick default of a mode-dependent option."""
    def shown(value):
        if value is None:
            return "all"
        return ",".join(value) if isinstance(value, tuple) else f"{value}{unit}"

    return f"{text} (full: {shown(FULL[name])}, quick: {shown(QUICK[name])})"


def _images(split: str, total: int, smallest: int = 1) -> Callable[[str], int]:
    """Type: a number of MNIST images of ``split``, ``smallest`` up to all ``total`` of them."""
    reason = f"MNIST has {total} {split} images" + (
        f"; a t-SNE map and its 5-NN score need {smallest}" if smallest > 1 else "")
    return int_in_range(smallest, total, reason)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lstm_svd", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("commands", nargs="+", choices=COMMANDS, metavar="command",
                   help="one or more of: " + ", ".join(COMMANDS))
    p.add_argument("--out", type=output_folder, default="results/lstm_svd",
                   help="output folder (default results/lstm_svd); one run at a time")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seed of the classifier's training, subsamples, t-SNE and the generative models (default 0)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="classifier training epochs (default: the recipe's)")
    p.add_argument("--recipe", default=None, choices=CLASSIFIER_RECIPES,
                   help="classifier recipe in architectures.training (default: the analyses' recipe; 'thesis' = 2 "
                        "epochs as in the thesis)")
    p.add_argument("--weights", type=existing_file, default=None,
                   help="a weights or model file (.h5, .weights.h5, .keras) of architectures.models.lstm_classifier "
                        "to analyse instead of the cached model")
    p.add_argument("--reference-row", type=int_in_range(1, DIRECTIONS), default=None, metavar="ROW",
                   help=f"output-layer: the row of W^T (1..{DIRECTIONS}) whose angles to the others are drawn "
                        "(default: the row with the fewest near-orthogonal partners, like the thesis' 7th)")
    p.add_argument("--keep", type=int_list(1, DIRECTIONS, "1,2,3,4,6"), action="append", default=None,
                   metavar="1,2,3,4,6",
                   help="lowrank: an extra subset of distinct singular directions (1 = largest); repeatable. "
                        "Default: the thesis' proposal 2,3,4,6,7,8,9,10 (all but the 1st and 5th)")
    p.add_argument("--quick", action="store_true", help="few-minute settings (the 'quick' defaults below)")
    p.add_argument("--n-train", type=_images("training", MNIST_TRAIN, MIN_POINTS), default=None,
                   help=f"use a random subset of the training images ({MIN_POINTS}..{MNIST_TRAIN})")
    p.add_argument("--n-test", type=_images("test", MNIST_TEST, MIN_POINTS), default=None,
                   help=f"use a random subset of the test images ({MIN_POINTS}..{MNIST_TEST})")
    p.add_argument("--tsne-samples", type=_images("training", MNIST_TRAIN, MIN_POINTS),
                   help=_mode_help("points per split in t-SNE", "tsne_samples"))
    p.add_argument("--pca-points", type=_images("training", MNIST_TRAIN), default=10000,
                   help="points per split drawn in the PCA figure")
    p.add_argument("--ae-epochs", type=positive_int, help=_mode_help("autoencoder epochs", "ae_epochs"))
    p.add_argument("--ae-train", type=_images("training", MNIST_TRAIN),
                   help=_mode_help("autoencoder training images", "ae_train"))
    p.add_argument("--vae-epochs", type=positive_int, help=_mode_help("VAE epochs", "vae_epochs"))
    p.add_argument("--vae-train", type=_images("training", MNIST_TRAIN, MIN_POINTS),
                   help=_mode_help("VAE training images", "vae_train"))
    p.add_argument("--latent-dim", type=int_in_range(2, reason="the t-SNE of the latent means needs 2"), default=16,
                   help="VAE latent dimension (default 16)")
    p.add_argument("--sample-epochs", type=positive_int,
                   help=_mode_help("epochs of the classifier trained on VAE samples", "sample_epochs"))
    p.add_argument("--decoder-epochs", type=positive_int,
                   help=_mode_help("epochs of the h -> image decoder", "decoder_epochs"))
    p.add_argument("--gate-test", type=_images("test", MNIST_TEST),
                   help=_mode_help("test images for the gate variants", "gate_test"))
    p.add_argument("--gate-families", type=name_list(experiments.FAMILIES[:-1]),
                   help=_mode_help("comma-separated variant families for the gate blocks: first-k, last-k, "
                                   "all-except-one, just-one", "gate_families"))
    p.add_argument("--trajectory", choices=("none", "analysed", *CLASSIFIER_RECIPES),
                   help=_mode_help("train: retrain with this recipe to record the confusion matrices after every "
                                   "epoch ('thesis' = 2 epochs; 'analysed' = the analysed model's recipe; 'none')",
                                   "trajectory"))
    p.add_argument("--cache-dir", type=output_folder, default=None,
                   help="hidden-state cache (default $KERAS_XAI_HOME/lstm_svd/states)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    return p


def parse(argv=None) -> argparse.Namespace:
    """The options, each checked (see the types in ``parser``), with the mode's defaults filled in."""
    args = parser().parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv=None) -> int:
    args = parse(argv)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # Keras' retracing notes are about our many small predict calls
    ctx = Context(args, args.out)
    try:
        with RunLock(ctx.out, log=ctx.log):  # one run per folder: two would overwrite each other's files
            path = run_commands(ctx)
    # User errors found only once the run is under way: one line naming the file, no traceback.
    except (RunLockedError, WeightsFileError, DataNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    ctx.log(f"wrote results, figures and {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
