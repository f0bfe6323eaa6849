"""The main job (`make run`): the quick reproduction of both studies.

1. Train (first run) or load the LSTM classifier and the MNIST variant of the paper's CIFAR net;
   print their test accuracies (results/accuracies.json).
2. "When Explanations Lie", quick protocol: random logit, cascading randomization and CSC for every
   method of the paper on 50 MNIST test images (patterns fitted on 2,000 training images), the
   one-image-two-classes figure, PatternAttribution's singular values and the matrix-chain simulation
   (results/sanity/: JSON/CSV, PNG figures, report.md); CSC on the untrained and the trained net
   (csc_training.*), the control behind report.md's explanations of the CSC claims.
3. The same sanity checks on the thesis' LSTM classifier (random logit, cascading randomization of logits,
   lstm2, lstm1, CSC per layer and time step) for the methods with an LSTM rule, on the same test images
   (results/sanity_lstm/, report.md answers "does LRP for LSTMs ignore later layers?").
4. The LSTM MNIST thesis, quick mode: output layer, low-rank variants, embeddings, autoencoder, VAE and
   gate matrices (results/lstm_svd/, with its own report.md).

The full protocol (200 images, 20 simulation repetitions, other models) is `python -m sanity all --help`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from architectures import zoo  # noqa: E402
from architectures.cache import atomic_write_text  # noqa: E402
from architectures.cli_types import int_in_range, seed_int  # noqa: E402
from lstm_svd import cli as lstm_cli  # noqa: E402
from sanity import cli as sanity_cli  # noqa: E402

MODELS = [  # (architecture, dataset, what the seed reports)
    ("lstm_classifier", "mnist", "thesis: 97.23% (PyTorch, 2 epochs)"),
    ("cifar_net", "mnist", "paper: 80.89% on CIFAR-10 (not available offline; MNIST variant here)"),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--seed", type=seed_int, default=0, help="training seed of the cached models")
    parser.add_argument("--n-images", type=int_in_range(1, 10_000), default=50,
                        help="test images for the sanity checks")
    parser.add_argument("--n-fit", type=int_in_range(1, 60_000), default=2000,
                        help="training images PatternNet's patterns are fitted on (quick: 2000; paper protocol: 10000)")
    parser.add_argument("--skip-sanity", action="store_true", help="skip the sanity checks")
    parser.add_argument("--skip-lstm", action="store_true", help="skip the LSTM thesis analyses")
    parser.add_argument("--overwrite", action="store_true",
                        help="sanity checks: recompute stored results of other settings instead of stopping")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = []
    for architecture, dataset, reference in MODELS:
        trained = zoo.trained_model(architecture, dataset, seed=args.seed)
        meta = trained.metadata
        rows.append({"architecture": architecture, "dataset": dataset, "recipe": meta["recipe"]["name"],
                     "epochs": meta["recipe"]["epochs"], "seed": args.seed,
                     "test_accuracy": meta["test_accuracy"], "reference": reference, "weights": meta["source"]})
        print(f"{architecture:16s} {dataset:8s} recipe={rows[-1]['recipe']:8s} "
              f"test accuracy {100 * meta['test_accuracy']:.2f}%   ({reference})", flush=True)
    atomic_write_text(out / "accuracies.json", json.dumps(rows, indent=2))
    print(f"wrote {out / 'accuracies.json'}")
    codes = []
    if not args.skip_sanity:
        codes.append(sanity_cli.main(["all", "--model", "cifar_net", "--dataset", "mnist", "--n-images",
                                      str(args.n_images), "--repetitions", "10", "--n-fit", str(args.n_fit),
                                      "--out", str(out / "sanity"), *(["--overwrite"] if args.overwrite else [])]))
        # The control behind the CSC claims' explanations: the same protocol on the untrained net.
        codes.append(sanity_cli.main(["csc-training", "--epochs", "0,1", "--n-images", str(args.n_images),
                                      "--n-fit", str(args.n_fit), "--out", str(out / "sanity"),
                                      *(["--overwrite"] if args.overwrite else [])]))
        codes.append(sanity_cli.main(["all", "--model", "lstm_classifier", "--n-images", str(args.n_images),
                                      "--out", str(out / "sanity_lstm"), *(["--overwrite"] if args.overwrite else [])]))
    if not args.skip_lstm:
        codes.append(lstm_cli.main(["all", "--quick", "--seed", str(args.seed), "--out", str(out / "lstm_svd")]))
    return next((code for code in codes if code), 0)  # the first failure's exit code


if __name__ == "__main__":
    sys.exit(main())
