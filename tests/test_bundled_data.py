"""The bundled data sets are read from scikit-learn's files without importing scikit-learn,
and hold exactly what its loaders return."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets

from dlbasics.data.bundled import read_bundled

LOADERS = {
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
}


@pytest.mark.parametrize("name", list(LOADERS))
def test_bundled_data_matches_scikit_learns_loader(name):
    x, y = read_bundled(name)
    reference = LOADERS[name]()
    np.testing.assert_allclose(x, reference.data, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(y, reference.target)
    assert y.dtype == reference.target.dtype


def test_a_digits_run_imports_neither_scikit_learn_nor_plotting():
    # Importing scikit-learn costs about 1.5 s of start-up; digits needs only its CSV file.
    code = (
        "import sys\n"
        "from conftest import make_config\n"
        "from dlbasics.data import build_data\n"
        "for name in ('digits', 'seq_digits'):\n"
        "    build_data(make_config(f'data={name}').data)\n"
        "print(sorted(m for m in ('sklearn', 'scipy', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "[]"
