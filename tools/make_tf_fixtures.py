"""Reference outputs of TensorFlow's LRN for tests/ops/test_frameworks.py.

Run with an environment that has tensorflow-cpu (kept apart from torch's)::

    python -m venv tfvenv && tfvenv/bin/pip install tensorflow-cpu numpy
    tfvenv/bin/python tools/make_tf_fixtures.py

``tf.nn.local_response_normalization`` takes NHWC input and a depth radius r:
``b = a / (bias + alpha * sum over channels c-r..c+r of a**2) ** beta``.  The
stored ``x`` is that NHWC input, which normcli reads with ``channels_last``.
All inputs and parameters come from a fixed numpy seed; the TensorFlow and
numpy versions are stored in the file.  Writes tests/fixtures/tensorflow_lrn.npz.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tensorflow_lrn.npz"


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    rng = np.random.default_rng(20261126)
    shapes = {"nhwc": (2, 5, 4, 7), "fewc": (3, 4, 3, 2), "deep": (1, 3, 3, 19)}
    arrays: dict[str, np.ndarray] = {}
    names = []
    for name, shape in shapes.items():
        for radius in range(0, 5):
            alpha = float(10 ** rng.uniform(-4, 0))
            beta = float(rng.uniform(0.25, 1.5))
            bias = float(rng.uniform(0.5, 3.0))
            x = rng.normal(size=shape) * rng.uniform(0.3, 3.0) / np.sqrt(alpha)
            x[rng.random(shape) < 0.1] = 0.0
            x = x.astype(np.float32)
            y = tf.nn.local_response_normalization(
                tf.constant(x), depth_radius=radius, bias=bias, alpha=alpha, beta=beta
            ).numpy()
            case = f"{name}_r{radius}"
            names.append(case)
            arrays[f"{case}_x"] = x
            arrays[f"{case}_y"] = y
            arrays[f"{case}_params"] = np.array([radius, alpha, beta, bias])
    arrays["cases"] = np.array(names)
    arrays["tensorflow_version"] = np.array(tf.__version__)
    arrays["numpy_version"] = np.array(np.__version__)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"tensorflow {tf.__version__}: wrote {OUT} ({OUT.stat().st_size} bytes, "
          f"{len(names)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
