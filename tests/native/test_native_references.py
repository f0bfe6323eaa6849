"""The 26 reference files iNNvestigate publishes (one-layer models): every model of every file
must match with the upstream tolerance."""
from pathlib import Path

import pytest

from keras_xai.references import REFERENCE_METHODS, check_reference_file

REFERENCE_DIR = Path(__file__).resolve().parents[3] / "shared" / "innvestigate_refs" / "layer"
FILES = sorted(REFERENCE_DIR.glob("*.hdf5"))


def test_every_published_reference_file_is_covered():
    assert len(FILES) == 26, f"expected the 26 published files in {REFERENCE_DIR}"
    assert {f.stem for f in FILES} == set(REFERENCE_METHODS)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_published_reference(path):
    rows = check_reference_file(path)
    assert {r["model"] for r in rows} == {
        "Dense", "Dense_relu", "Conv2D", "Conv2D_relu", "AveragePooling2D", "MaxPooling2D"}
    for row in rows:
        assert row["output_max_abs"] < 1e-4, row  # the rebuilt model is the published one
        assert row["within"], row
