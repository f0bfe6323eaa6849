"""``python -m sanity``: the command line (options, their checks before anything is loaded, exit codes).

The experiments it runs and the files they write are :mod:`sanity.commands`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras_xai
from architectures.cli_types import (existing_file, existing_folder, int_list, name_list, non_negative_int,
                                     output_folder, positive_int, seed_int)
from architectures.data import DataNotFoundError
from architectures.run_lock import RunLock, RunLockedError
from architectures.weights import WeightsFileError
from keras_xai.engines.base import EngineUnavailableError

from . import commands, csc_training, methods
from .store import StoredResultsError

COMMANDS = (*commands.EXPERIMENTS, "all", "csc-training")
# How many test (and training) images each data set has; the ImageNet folder is counted when read.
TEST_IMAGES = {"mnist": 10_000, "cifar10": 10_000, "samples": 20}
TRAINING_IMAGES = {"mnist": 60_000, "cifar10": 50_000, "samples": 20}
DATASETS_OF = {"cifar_net": ("mnist", "cifar10", "samples"), "vgg16": ("samples", "imagenet"),
               "resnet50": ("samples", "imagenet"), "lstm_classifier": ("mnist",)}
N_CLASSES = {"cifar_net": 10, "vgg16": 1000, "resnet50": 1000, "lstm_classifier": 10}
DEFAULT_N_IMAGES, DEFAULT_N_FIT = 200, 10_000


def _weights(text: str):
    """'imagenet' (Keras' download) or an existing weights or model file."""
    return text if text == "imagenet" else str(existing_file(text))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sanity",
        description="Reproduce 'When Explanations Lie' (Sixt et al., ICML 2020): random logit (fig. 4), cascading "
                    "parameter randomization (fig. 5, 11), cosine similarity convergence (fig. 6, 7c, 10), one image "
                    "for two classes (fig. 1b-e) and the matrix-chain simulation (fig. 8). Results go to --out as "
                    "JSON/CSV (every number behind every figure), PNG figures and report.md. Interrupted runs "
                    "resume where they stopped when the same command is repeated, with byte-identical results; "
                    "stored results of other settings (weights, images, methods, ...) are never reused: the run "
                    "stops and says what differs (--overwrite recomputes them). One run at a time per --out. "
                    "--model lstm_classifier applies the same checks to the LSTM MNIST thesis' classifier (methods "
                    "with an LSTM rule; CSC also per time step) and reports, per method, whether each check finds "
                    "it ignoring later layers.")
    parser.add_argument("command", choices=COMMANDS,
                        help="experiment to run ('all': every one; 'csc-training': CSC at cifar_net's conv1 for "
                             "each training length of --epochs, the control behind report.md's explanations)")
    parser.add_argument("--model", default="cifar_net", choices=sorted(DATASETS_OF),
                        help="the paper's networks (cifar_net: appendix D; vgg16; resnet50) or the thesis' "
                             "lstm_classifier (default cifar_net)")
    parser.add_argument("--weights", default=None, type=_weights,
                        help="cifar_net, lstm_classifier: a weights or model file, .h5, .weights.h5 or .keras "
                             "(default: the cached trained model, trained on first use); vgg16/resnet50: "
                             "'imagenet' (download) or such a file (default imagenet)")
    parser.add_argument("--dataset", default=None, choices=["mnist", "cifar10", "samples", "imagenet"],
                        help="test images: mnist (default) / cifar10 (cifar_net), samples (foolbox's 20 real "
                             "images; default for vgg16/resnet50), imagenet (a folder given by --data-dir)")
    parser.add_argument("--data-dir", default=None, type=existing_folder, help="CIFAR-10 batches or ImageNet image folder")
    parser.add_argument("--methods", default=None,
                        type=name_list(s.label for s in methods.PAPER_METHODS + methods.EXTRA_METHODS),
                        help="comma-separated method labels (default: every paper method the engine offers; "
                             "lstm_classifier: " + ", ".join(methods.LSTM_METHOD_LABELS) + "): "
                             + ", ".join(s.label for s in methods.PAPER_METHODS)
                             + "; also available: " + ", ".join(s.label for s in methods.EXTRA_METHODS))
    parser.add_argument("--n-images", type=positive_int, default=None,
                        help=f"number of test images (default and paper: {DEFAULT_N_IMAGES}, or all the data set has "
                             "if fewer)")
    parser.add_argument("--seed", type=seed_int, default=0,
                        help="seed of image choice, random classes, vectors, weights")
    parser.add_argument("--engine", default="native", choices=sorted(keras_xai.analyzer.ENGINES),
                        help="keras_xai engine (innvestigate and deeplift need the reproduction stack)")
    parser.add_argument("--out", default="results/sanity", type=output_folder, help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete stored results of other settings in --out and recompute them (default: stop "
                             "and say what differs)")
    parser.add_argument("--chunk-size", type=positive_int, default=16,
                        help="images per batch (CSC: at most this many, fewer where one batch's results would pass "
                             "1 GiB; lower it for VGG/ResNet). A resumed run keeps the batch size it started with")
    parser.add_argument("--repetitions", type=positive_int, default=20,
                        help="simulation: chains per variant (paper: 20)")
    parser.add_argument("--image", type=non_negative_int, default=0,
                        help="two-classes: position of the image among the chosen (0 .. --n-images - 1)")
    parser.add_argument("--classes", type=int_list(0, max(N_CLASSES.values()) - 1, "283,156"), default=None,
                        help="two-classes: two distinct class indices, e.g. 283,156 (default: the true class and "
                             "the model's runner-up)")
    parser.add_argument("--n-fit", type=positive_int, default=None,
                        help="PatternNet/PatternAttribution/pattern-svd: training images the patterns are fitted on "
                             f"(cifar_net; default {DEFAULT_N_FIT}, or all the data set has if fewer)")
    parser.add_argument("--patterns", default=None, type=existing_file,
                        help="a patterns .npz (PatternAnalyzer.save_patterns) to use instead of fitting; needed for "
                             "vgg16/resnet50")
    parser.add_argument("--epochs", type=int_list(0, 1000, "0,1,3,10"), default=None,
                        help="csc-training: training lengths of cifar_net (epochs of its recipe; 0: untrained), "
                             "default 0,1,3,10; each is trained once and cached (MNIST: ~3.5 min per epoch on 2 "
                             "cores). Other commands: the cached model of that length instead of the default")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def parse(argv=None) -> argparse.Namespace:
    """The arguments, every value checked before any model or data is loaded (``parser.error``: exit 2)."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.dataset = args.dataset or DATASETS_OF[args.model][0]
    if args.command == "csc-training" and args.epochs is None:
        args.epochs = csc_training.DEFAULT_EPOCHS
    if args.n_images is None:
        args.n_images = min(DEFAULT_N_IMAGES, TEST_IMAGES.get(args.dataset, DEFAULT_N_IMAGES))
    if args.n_fit is None:
        args.n_fit = min(DEFAULT_N_FIT, TRAINING_IMAGES.get(args.dataset, DEFAULT_N_FIT))
    if args.command != "simulate":
        if args.dataset not in DATASETS_OF[args.model]:
            parser.error(f"--model {args.model} runs on --dataset {' or '.join(DATASETS_OF[args.model])}, "
                         f"not {args.dataset}")
        available = TEST_IMAGES.get(args.dataset)
        if available is not None and args.n_images > available:
            parser.error(f"--n-images {args.n_images}: --dataset {args.dataset} has {available} test images")
        if args.n_fit > TRAINING_IMAGES.get(args.dataset, args.n_fit):
            parser.error(f"--n-fit {args.n_fit}: --dataset {args.dataset} has {TRAINING_IMAGES[args.dataset]} "
                         "training images")
        if args.image >= args.n_images:
            parser.error(f"--image {args.image} is not among the {args.n_images} chosen images (0 .. "
                         f"{args.n_images - 1})")
        if args.classes is not None:
            n_classes = N_CLASSES[args.model]
            if len(args.classes) != 2:
                parser.error(f"--classes takes two distinct class indices, got {len(args.classes)}")
            if not all(c < n_classes for c in args.classes):
                parser.error(f"--classes {','.join(map(str, args.classes))}: {args.model} has classes 0 .. "
                             f"{n_classes - 1}")
        if args.dataset == "imagenet" and args.data_dir is None:
            parser.error("--dataset imagenet needs --data-dir (a folder of ImageNet validation images)")
        if args.model in ("cifar_net", "lstm_classifier") and args.weights == "imagenet":
            parser.error(f"--weights imagenet is for vgg16/resnet50; {args.model} takes a weights file")
        if args.command == "csc-training" and args.model != "cifar_net":
            parser.error(f"csc-training trains the appendix-D net (--model cifar_net), not {args.model}")
        if args.epochs is not None and (args.model != "cifar_net" or args.weights is not None):
            parser.error("--epochs selects a training length of the project's cifar_net (no --weights)")
        if args.epochs is not None and args.command != "csc-training" and len(args.epochs) != 1:
            parser.error(f"--epochs: {args.command} runs on one training length, got {len(args.epochs)}")
        if args.model == "lstm_classifier" and args.engine != "native":
            parser.error(f"--model lstm_classifier runs on the native engine only ({args.engine} has no LSTM layers)")
        if args.model == "lstm_classifier" and args.command == "pattern-svd":
            parser.error("pattern-svd decomposes PatternNet's patterns of dense and conv layers; lstm_classifier "
                         "has none (its methods: " + ", ".join(methods.LSTM_METHOD_LABELS) + ")")
    return args


# What a user can get wrong that only shows once files are read: one `error:` line each, no traceback.
USER_ERRORS = (WeightsFileError, StoredResultsError, RunLockedError, EngineUnavailableError, DataNotFoundError)


def main(argv=None) -> int:
    args = parse(argv)
    out = Path(args.out)
    try:
        with RunLock(out):
            return commands.run(args, out)
    except USER_ERRORS as error:  # names the file or setting and what to do
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
