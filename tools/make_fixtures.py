"""Generate reference outputs from the real frameworks for tests/ops/test_frameworks.py.

Run with an environment that has torch (CPU), onnx and onnxruntime::

    /work/tvenv/bin/python tools/make_fixtures.py [--porting-only]

(``--porting-only`` writes only ``pytorch_porting.npz``.)

It writes small compressed ``tests/fixtures/*.npz`` files (no pickles: every
array is numeric or a unicode string) so that the test suite can compare
normcli against PyTorch and onnxruntime without installing either.  All inputs
and parameters come from fixed numpy seeds; nobody tuned them.  The framework
versions are printed and stored in each file (``torch_version``,
``onnxruntime_version``, ...).

Layout notes (normcli reads 3-D as (C, H, W) and >4-D as (..., C, H, W)):

* PyTorch reads a 3-D input as (N, C, L), so the 3-D case is run as ``x[None]``.
* PyTorch reads a 5-D input as (N, C, D, H, W); the stored ``x`` is in normcli's
  layout (N, D, C, H, W) and is moved to PyTorch's layout and back.

If onnx/onnxruntime are missing or fail, their fixtures are skipped with a
printed message (the tests then skip too).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def _lrn_input(rng: np.random.Generator, shape, alpha: float, dtype) -> np.ndarray:
    """Values large enough that the alpha term matters, with signs and zeros."""
    scale = rng.uniform(0.3, 3.0) / np.sqrt(alpha)
    x = rng.normal(size=shape) * scale
    x[rng.random(shape) < 0.1] = 0.0
    return x.astype(dtype)


def torch_lrn(torch, versions: dict) -> None:
    rng = np.random.default_rng(20240611)
    # name -> (normcli-layout shape, dtype, how to call torch)
    inputs = {
        "nchw": ((2, 7, 5, 4), np.float32, "4d"),
        "chw": ((7, 6, 5), np.float32, "3d"),  # torch sees (1, 7, 6, 5)
        "ndchw": ((2, 3, 4, 5, 3), np.float32, "5d"),  # torch sees (2, 4, 3, 5, 3)
        "fewc": ((3, 2, 4, 3), np.float32, "4d"),  # C=2 < every size >= 3
        "nchw64": ((2, 7, 5, 4), np.float64, "4d"),  # float64: tight check
    }
    arrays: dict[str, np.ndarray] = {}
    names = []
    for name, (shape, dtype, how) in inputs.items():
        for size in range(1, 7):
            alpha = float(10 ** rng.uniform(-4, 0))
            beta = float(rng.uniform(0.25, 1.5))
            k = float(rng.uniform(0.5, 3.0))
            x = _lrn_input(rng, shape, alpha, dtype)
            layer = torch.nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)
            t = torch.from_numpy(x)
            if how == "3d":
                y = layer(t[None])[0]
            elif how == "5d":
                y = layer(t.movedim(2, 1)).movedim(1, 2)
            else:
                y = layer(t)
            case = f"{name}_n{size}"
            names.append(case)
            arrays[f"{case}_x"] = x
            arrays[f"{case}_y"] = y.numpy()
            arrays[f"{case}_params"] = np.array([size, alpha, beta, k])  # n, alpha, beta, k
    arrays["cases"] = np.array(names)
    _save("pytorch_lrn.npz", arrays, versions)


def torch_bn(torch, versions: dict) -> None:
    rng = np.random.default_rng(20240612)
    arrays: dict[str, np.ndarray] = {}
    # BatchNorm2d, training mode: per channel over (N, H, W).
    for case, (shape, eps, momentum) in {
        "bn2d": ((4, 3, 5, 6), 1e-5, 0.1),
        "bn2d_eps": ((2, 5, 3, 3), 1e-3, 0.3),
    }.items():
        C = shape[1]
        x = (rng.normal(size=shape) * rng.uniform(0.5, 4, size=(1, C, 1, 1))
             + rng.uniform(-3, 3, size=(1, C, 1, 1))).astype(np.float32)
        w = rng.uniform(0.5, 2.0, size=C).astype(np.float32)
        b = rng.normal(size=C).astype(np.float32)
        bn = torch.nn.BatchNorm2d(C, eps=eps, momentum=momentum)
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(w))
            bn.bias.copy_(torch.from_numpy(b))
        bn.train()
        with torch.no_grad():
            y = bn(torch.from_numpy(x)).numpy()
        arrays.update({
            f"{case}_x": x, f"{case}_y": y, f"{case}_weight": w, f"{case}_bias": b,
            f"{case}_eps": np.array(eps), f"{case}_momentum": np.array(momentum),
            # running stats started at mean 0, var 1:
            # running = (1 - momentum) * running + momentum * batch (unbiased var)
            f"{case}_running_mean": bn.running_mean.numpy().copy(),
            f"{case}_running_var": bn.running_var.numpy().copy(),
        })
    # BatchNorm1d on x.reshape(N, -1): per activation (the seed's form).
    shape = (5, 2, 3, 4)
    F = int(np.prod(shape[1:]))
    x = (rng.normal(size=shape) * rng.uniform(0.5, 3, size=shape[1:])
         + rng.uniform(-2, 2, size=shape[1:])).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=F).astype(np.float32)
    b = rng.normal(size=F).astype(np.float32)
    bn = torch.nn.BatchNorm1d(F, eps=1e-5, momentum=1.0)  # momentum 1: running = batch
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(w))
        bn.bias.copy_(torch.from_numpy(b))
    bn.train()
    with torch.no_grad():
        y = bn(torch.from_numpy(x.reshape(shape[0], F))).numpy().reshape(shape)
    arrays.update({
        "bn1d_x": x, "bn1d_y": y,
        "bn1d_weight": w.reshape(shape[1:]), "bn1d_bias": b.reshape(shape[1:]),
        "bn1d_eps": np.array(1e-5), "bn1d_momentum": np.array(1.0),
        "bn1d_running_mean": bn.running_mean.numpy().reshape(shape[1:]).copy(),
        "bn1d_running_var": bn.running_var.numpy().reshape(shape[1:]).copy(),
    })
    _save("pytorch_bn.npz", arrays, versions)


def torch_porting(torch, versions: dict) -> None:
    """``pytorch_porting.npz``: what ``identify`` and ``update_running`` are tested on.

    * ``lrn_n{size}``: ``nn.LocalResponseNorm`` sizes 1..8 on 12 channels, random
      parameters (identify must recover them);
    * ``xmap_n{size}``: the legacy ``nn.CrossMapLRN2d`` (its running sum never
      drops channel 0: identify must report no exact match);
    * ``{case}_b{i}_x`` and ``{case}_after{i}_*``: batches fed to a training
      ``BatchNorm2d`` (``m01``: momentum 0.1, ``mnone``: momentum=None, the
      cumulative average, ``m07``: 0.7) or ``BatchNorm1d`` on flattened samples
      (``act``), with ``running_mean``, ``running_var`` and
      ``num_batches_tracked`` after each batch, and the training-mode output
      ``{case}_b{i}_y`` (normalized with the batch's own statistics).
    """
    rng = np.random.default_rng(20261201)
    arrays: dict[str, np.ndarray] = {}
    lrn_cases = []
    for size in range(1, 9):
        alpha = float(10 ** rng.uniform(-4, 0))
        beta = float(rng.uniform(0.25, 1.5))
        k = float(rng.uniform(0.5, 3.0))
        x = _lrn_input(rng, (2, 12, 6, 5), alpha, np.float32)
        y = torch.nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)(torch.from_numpy(x))
        case = f"lrn_n{size}"
        lrn_cases.append(case)
        arrays[f"{case}_x"], arrays[f"{case}_y"] = x, y.numpy()
        arrays[f"{case}_params"] = np.array([size, alpha, beta, k])
    xmap_cases = []
    for size in (3, 5):
        alpha = float(10 ** rng.uniform(-3, -1))
        beta = float(rng.uniform(0.5, 1.0))
        k = float(rng.uniform(1.0, 2.0))
        x = _lrn_input(rng, (2, 9, 4, 4), alpha, np.float32)
        y = torch.nn.CrossMapLRN2d(size, alpha=alpha, beta=beta, k=k)(torch.from_numpy(x))
        case = f"xmap_n{size}"
        xmap_cases.append(case)
        arrays[f"{case}_x"], arrays[f"{case}_y"] = x, y.numpy()
        arrays[f"{case}_params"] = np.array([size, alpha, beta, k])
    bn_cases = []
    shapes = [(3, 4, 5, 5), (2, 4, 5, 5), (5, 4, 3, 5), (1, 4, 2, 3)]
    for case, momentum, flat in (("m01", 0.1, False), ("mnone", None, False),
                                 ("m07", 0.7, False), ("act", 0.1, True)):
        C = 4
        bn = (torch.nn.BatchNorm1d(C * 6, momentum=momentum) if flat
              else torch.nn.BatchNorm2d(C, momentum=momentum))
        bn.train()
        for i, shape in enumerate(shapes if not flat else [(3, 4, 2, 3), (5, 4, 2, 3),
                                                            (2, 4, 2, 3)]):
            x = (rng.normal(size=shape) * rng.uniform(0.5, 3.0)
                 + rng.uniform(-2, 2)).astype(np.float32)
            with torch.no_grad():
                t = torch.from_numpy(x)
                y = bn(t.reshape(shape[0], -1) if flat else t)
            arrays[f"{case}_b{i}_x"] = x
            arrays[f"{case}_b{i}_y"] = y.numpy().reshape(shape).copy()
            arrays[f"{case}_after{i}_running_mean"] = bn.running_mean.numpy().copy()
            arrays[f"{case}_after{i}_running_var"] = bn.running_var.numpy().copy()
            arrays[f"{case}_after{i}_num_batches_tracked"] = bn.num_batches_tracked.numpy().copy()
        arrays[f"{case}_batches"] = np.array(i + 1)
        arrays[f"{case}_momentum"] = np.array(np.nan if momentum is None else momentum)
        bn_cases.append(case)
    arrays["lrn_cases"] = np.array(lrn_cases)
    arrays["xmap_cases"] = np.array(xmap_cases)
    arrays["bn_cases"] = np.array(bn_cases)
    _save("pytorch_porting.npz", arrays, versions)


def onnx_models(versions: dict) -> None:
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError as e:
        print(f"skipping onnxruntime fixtures: {e}")
        return
    versions = {**versions, "onnx_version": onnx.__version__,
                "onnxruntime_version": ort.__version__}
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")

    def run(node, inputs: dict[str, np.ndarray], opset: int) -> np.ndarray:
        ins = [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape)
               for k, v in inputs.items()]
        shape = inputs["X"].shape  # LRN and BatchNormalization keep the shape
        out = helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)
        graph = helper.make_graph([node], "g", ins, [out])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        opts = ort.SessionOptions()
        opts.log_severity_level = 4  # the expected even-size refusal is reported below
        sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        return sess.run(None, inputs)[0]

    rng = np.random.default_rng(20240613)
    try:
        arrays: dict[str, np.ndarray] = {}
        names = []
        cases = [((2, 7, 5, 4), s) for s in (1, 3, 5, 7)] + [((1, 3, 4, 4), 5)]
        for shape, size in cases:
            alpha = float(10 ** rng.uniform(-4, 0))
            beta = float(rng.uniform(0.25, 1.5))
            bias = float(rng.uniform(0.5, 3.0))
            x = _lrn_input(rng, shape, alpha, np.float32)
            node = helper.make_node("LRN", ["X"], ["Y"], size=size, alpha=alpha,
                                    beta=beta, bias=bias)
            y = run(node, {"X": x}, 13)
            case = f"c{shape[1]}_n{size}"
            names.append(case)
            arrays[f"{case}_x"], arrays[f"{case}_y"] = x, y
            arrays[f"{case}_params"] = np.array([size, alpha, beta, bias])
        # The ONNX node test case test_lrn: size 3, alpha 2e-4, beta 0.5, bias 2, (5,5,5,5).
        x = rng.normal(size=(5, 5, 5, 5)).astype(np.float32)
        node = helper.make_node("LRN", ["X"], ["Y"], size=3, alpha=2e-4, beta=0.5, bias=2.0)
        names.append("onnx_test_lrn")
        arrays["onnx_test_lrn_x"], arrays["onnx_test_lrn_y"] = x, run(node, {"X": x}, 13)
        arrays["onnx_test_lrn_params"] = np.array([3, 2e-4, 0.5, 2.0])
        arrays["cases"] = np.array(names)
        try:  # documented: onnxruntime refuses even sizes; record what it does
            node = helper.make_node("LRN", ["X"], ["Y"], size=4)
            run(node, {"X": np.ones((1, 6, 2, 2), np.float32)}, 13)
            print("note: onnxruntime accepted LRN size=4 (expected a refusal)")
        except Exception as e:  # noqa: BLE001 - any refusal is fine
            print(f"onnxruntime refuses LRN size=4 as documented: {str(e).splitlines()[0][:120]}")
        _save("onnx_lrn.npz", arrays, versions)

        arrays = {}
        names = []
        for case, (shape, eps) in {"bn": ((2, 3, 4, 5), 1e-5),
                                   "bn_eps": ((3, 4, 2, 3), 1e-2)}.items():
            C = shape[1]
            x = (rng.normal(size=shape) * 2 + 1).astype(np.float32)
            scale = rng.uniform(0.5, 2, size=C).astype(np.float32)
            b = rng.normal(size=C).astype(np.float32)
            mean = rng.normal(size=C).astype(np.float32)
            var = rng.uniform(0.2, 3, size=C).astype(np.float32)
            node = helper.make_node("BatchNormalization", ["X", "scale", "B", "mean", "var"],
                                    ["Y"], epsilon=eps)
            y = run(node, {"X": x, "scale": scale, "B": b, "mean": mean, "var": var}, 15)
            names.append(case)
            arrays.update({f"{case}_x": x, f"{case}_y": y, f"{case}_scale": scale,
                           f"{case}_bias": b, f"{case}_mean": mean, f"{case}_var": var,
                           f"{case}_eps": np.array(eps)})
        arrays["cases"] = np.array(names)
        _save("onnx_bn.npz", arrays, versions)
    except Exception as e:  # noqa: BLE001 - report and carry on without onnx fixtures
        print(f"skipping onnxruntime fixtures: onnxruntime failed: {e!r}")


def _save(name: str, arrays: dict[str, np.ndarray], versions: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {k: np.array(v) for k, v in versions.items()}
    np.savez_compressed(OUT / name, **arrays, **meta)
    print(f"wrote {OUT / name} ({(OUT / name).stat().st_size} bytes)")


def main() -> int:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    versions = {"torch_version": torch.__version__, "numpy_version": np.__version__,
                "python_version": sys.version.split()[0]}
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    if "--porting-only" in sys.argv:  # the other files stay as they were committed
        torch_porting(torch, versions)
        return 0
    torch_lrn(torch, versions)
    torch_bn(torch, versions)
    torch_porting(torch, versions)
    onnx_models({"numpy_version": np.__version__,
                 "python_version": sys.version.split()[0]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
