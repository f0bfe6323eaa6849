import gzip
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from architectures import data
from architectures.data import DataNotFoundError

# SHA-256 of the uint8 arrays (C order) and int64 labels (little endian) of the standard 60k/10k MNIST.
MNIST_SHA256 = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "train_labels": "e474323ac02fc156161b0bbb1f8c9cfeb327a74bcd9f9680a8385269a24f566c",
    "test_labels": "2fd8de6bdb8d11780b4b96dc57847bcfe6953f7c32aa48bfcd8237c3b7847243",
}


def sha256(array):
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def mnist():
    return data.mnist()


def test_mnist_is_the_standard_split(mnist):
    assert mnist.train.images.shape == (60000, 28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.test.images.shape == (10000, 28, 28) and mnist.test.images.dtype == np.uint8
    assert mnist.train.labels.dtype == np.int64
    assert np.bincount(mnist.test.labels).tolist() == list(data.MNIST_TEST_LABEL_COUNTS)
    # The original training label counts (train 50k + validation 10k of the pickle, in order).
    assert np.bincount(mnist.train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.train.images.max() == 255 and mnist.train.images.min() == 0


def test_mnist_checksums(mnist):
    assert sha256(mnist.train.images) == MNIST_SHA256["train_images"]
    assert sha256(mnist.test.images) == MNIST_SHA256["test_images"]
    assert sha256(mnist.train.labels.astype("<i8")) == MNIST_SHA256["train_labels"]
    assert sha256(mnist.test.labels.astype("<i8")) == MNIST_SHA256["test_labels"]


def exploit_pickles(marker):
    """Pickles that would create ``marker`` when loaded by an unrestricted unpickler."""
    command = f"touch {marker}"

    class System:
        def __reduce__(self):
            return (os.system, (command,))

    class Eval:
        def __reduce__(self):
            return (eval, (f"__import__('os').system({command!r})",))

    # numpy's exec helper, written opcode by opcode: a global inside numpy that is no array constructor.
    runstring = f"cnumpy.testing._private.utils\nrunstring\n(V__import__('os').system({command!r})\n}}tR.".encode()
    return {"os.system": pickle.dumps([np.zeros(3), System()]),
            "builtins.eval, protocol 2": pickle.dumps({"a": np.ones(2), "b": Eval()}, protocol=2),
            "numpy runstring": runstring}


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    for what, payload in exploit_pickles(marker).items():
        path = tmp_path / "evil.pkl.gz"
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
        with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
            data.load_numpy_pickle(path)
        assert not marker.exists(), what
        pickle.loads(payload)  # the payload is real: an unrestricted unpickler runs it
        assert marker.exists(), what
        marker.unlink()


def test_restricted_unpickler_reads_arrays(tmp_path):
    path = tmp_path / "ok.pkl"
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, 2], "c": np.float64(2.5),
              "d": np.asfortranarray(np.ones((2, 3), np.int16))}
    for protocol in (2, 4, 5):
        path.write_bytes(pickle.dumps(arrays, protocol=protocol))
        loaded = data.load_numpy_pickle(path)
        np.testing.assert_array_equal(loaded["a"], arrays["a"])
        np.testing.assert_array_equal(loaded["d"], arrays["d"])
        assert loaded["b"] == [1, 2] and loaded["c"] == 2.5 and type(loaded["c"]) is np.float64


@pytest.mark.parametrize("core", ["numpy.core", "numpy._core"])
def test_restricted_unpickler_reads_numpy_1_and_2_names(tmp_path, core):
    # Protocol 2 names globals as text lines "c<module>\n<name>\n": renaming the core package gives the
    # pickle numpy 1 (numpy.core) or numpy 2 (numpy._core) writes, whichever numpy runs the test.
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "c": np.int64(7)}
    payload = pickle.dumps(arrays, protocol=2)
    for written in (b"cnumpy.core.multiarray\n", b"cnumpy._core.multiarray\n"):
        payload = payload.replace(written, f"c{core}.multiarray\n".encode())
    assert payload.count(f"c{core}.multiarray\n".encode()) == 2  # _reconstruct and scalar
    path = tmp_path / "names.pkl"
    path.write_bytes(payload)
    loaded = data.load_numpy_pickle(path)
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    assert loaded["c"] == 7 and loaded["c"].dtype == np.int64


def write_cifar_batches(folder, per_batch=4, seed=0):
    """The official CIFAR-10 python format: dicts with b'data' (n, 3072) uint8 rows and b'labels'."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        flat = images.transpose(0, 3, 1, 2).reshape(per_batch, -1)  # channel-major, as published
        with open(folder / name, "wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": flat,
                         b"filenames": [b"x.png"] * per_batch}, handle, protocol=2)
        written[name] = (images, labels)
    return written


def test_cifar10_from_local_batches(tmp_path):
    written = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    for path in (tmp_path, tmp_path / "cifar-10-batches-py"):  # the folder or its parent
        cifar = data.cifar10(path)
        assert cifar.train.images.shape == (20, 32, 32, 3) and cifar.test.images.shape == (4, 32, 32, 3)
        np.testing.assert_array_equal(cifar.test.images, written["test_batch"][0])
        np.testing.assert_array_equal(cifar.train.images[:4], written["data_batch_1"][0])
        assert cifar.train.labels[4:8].tolist() == written["data_batch_2"][1]


def test_cifar10_missing_local_folder_names_the_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="data_batch_1.*test_batch"):
        data.cifar10(tmp_path)


def test_cifar10_absent_without_download_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        data.cifar10(download=False)


def test_cifar10_offline_download_gives_one_clear_error(tmp_path):
    # A real download attempt through a proxy that refuses connections: what a machine without internet sees.
    script = (
        "from architectures import data\n"
        "try:\n    data.cifar10()\n"
        "except data.DataNotFoundError as e:\n    print('ERROR:', e)\n"
    )
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "keras"), HTTPS_PROXY="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert "ERROR: CIFAR-10 is not on this machine and could not be downloaded" in result.stdout, result.stderr
    assert "cifar-10-python.tar.gz" in result.stdout and "path=" in result.stdout


def test_sample_images_cifar10():
    samples = data.sample_images("cifar10")
    assert samples.images.shape == (20, 32, 32, 3) and samples.images.dtype == np.uint8
    assert samples.labels.tolist() == [int(p.stem.split("_")[-1]) for p in samples.paths]
    assert samples.labels[:4].tolist() == [3, 8, 8, 0]  # cat, ship, ship, airplane
    assert samples.images.std() > 20  # real photographs, not blank files


def test_sample_images_imagenet_resized():
    samples = data.sample_images("imagenet")
    assert samples.images.shape == (20, 224, 224, 3)
    assert samples.labels[0] == 243 and all(0 <= label < 1000 for label in samples.labels)


def test_sample_images_unknown_set():
    with pytest.raises(ValueError, match="unknown sample image set"):
        data.sample_images("svhn")


def test_caffe_preprocessing_and_inverse():
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    rgb[..., 0] = 200  # red
    bgr = data.caffe_preprocess(rgb)
    np.testing.assert_allclose(bgr[0, 0, 0], [-103.939, -116.779, 200 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(data.caffe_deprocess(bgr), rgb, atol=1e-4)
    with pytest.raises(ValueError, match="3 channels"):
        data.caffe_preprocess(np.zeros((1, 2, 2, 1)))


def test_imagenet_dir(tmp_path):
    from PIL import Image

    colours = {}
    for synset in ("n01", "n02"):
        (tmp_path / synset).mkdir()
        for i in range(3):
            colour = (10 * i + 5, 100, 200 if synset == "n01" else 50)
            Image.new("RGB", (300 + 10 * i, 250), colour).save(tmp_path / synset / f"img{i}.png")
            colours[(synset, f"img{i}.png")] = colour
    folder = data.imagenet_dir(tmp_path, n=4, seed=1)
    assert folder.images.shape == (4, 224, 224, 3) and folder.images.dtype == np.float32
    for image, path, label in zip(folder.images, folder.paths, folder.labels):
        assert label == path.parent.name
        r, g, b = colours[(label, path.name)]
        np.testing.assert_allclose(image[100, 100], [b - 103.939, g - 116.779, r - 123.68], atol=1e-3)
    again = data.imagenet_dir(tmp_path, n=4, seed=1)
    assert again.paths == folder.paths
    assert len(data.imagenet_dir(tmp_path, n=None).paths) == 6
    with pytest.raises(DataNotFoundError, match="does not exist"):
        data.imagenet_dir(tmp_path / "nope")
