"""Command line: ``python -m architectures train NAME`` trains (or loads) and caches a model."""
from __future__ import annotations

import argparse
import json
import sys

from . import cache, training, zoo
from .cli_types import existing_folder, positive_int, seed_int


def _parsers() -> tuple:
    """The command line's parser and its ``train`` subparser (which reports the train errors)."""
    parser = argparse.ArgumentParser(
        prog="python -m architectures",
        description="Train the project's models with the seeds' recipes and cache their weights in "
                    f"$KERAS_XAI_HOME (now {cache.home()}). A second run with the same settings loads them.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train or load one model and print its test accuracy",
                                description="Train or load one model and print its test accuracy.")
    train.add_argument("name", choices=sorted(zoo.TRAINABLE), help="architecture")
    train.add_argument("--dataset", default="mnist", choices=["mnist", "cifar10"],
                       help="training data (CIFAR-10 needs --data-dir or the Keras cache/internet)")
    train.add_argument("--recipe", default=None,
                       help="training recipe (see `recipes`); default: the one the analyses use")
    train.add_argument("--epochs", type=positive_int, default=None, help="override the recipe's number of epochs")
    train.add_argument("--seed", type=seed_int, default=0, help="random seed (initial weights, shuffling, dropout)")
    train.add_argument("--retrain", action="store_true", help="ignore the cache and train again")
    train.add_argument("--data-dir", type=existing_folder, default=None,
                       help="folder with the CIFAR-10 python batches")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    commands.add_parser("recipes", help="list the training recipes")
    return parser, train


def _check_train(train: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What one option cannot check alone: the data set and the recipe must exist for the architecture."""
    datasets = zoo.TRAINABLE[args.name]
    if args.dataset not in datasets:
        train.error(f"argument --dataset: {args.name} cannot be trained on {args.dataset}; "
                    f"choose {' or '.join(datasets)}")
    recipes = sorted(training.RECIPES[args.name])
    if args.recipe is not None and args.recipe not in recipes:
        train.error(f"argument --recipe: {args.name} has no recipe {args.recipe!r}; choose one of "
                    f"{', '.join(recipes)} (see `python -m architectures recipes`)")
    if args.data_dir is not None and args.dataset != "cifar10":
        train.error("argument --data-dir: only --dataset cifar10 reads a data folder")


def main(argv=None) -> int:
    parser, train = _parsers()
    args = parser.parse_args(argv)
    if args.command == "recipes":
        for architecture, recipes in training.RECIPES.items():
            for name, recipe in recipes.items():
                print(f"{architecture:16s} {name:20s} {recipe.description}")
        return 0
    _check_train(train, args)
    try:
        result = zoo.trained_model(args.name, args.dataset, recipe=args.recipe, seed=args.seed,
                                   epochs=args.epochs, retrain=args.retrain, data_dir=args.data_dir,
                                   verbose=0 if args.quiet else 1)
    except (ValueError, FileNotFoundError) as error:  # e.g. CIFAR-10 batches missing from --data-dir
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = {k: result.metadata[k] for k in ("architecture", "dataset", "seed", "test_accuracy", "source")}
    summary["recipe"] = result.metadata["recipe"]["name"]
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
