#!/usr/bin/env python3
"""Long-running fuzzer for normcli's readers (and optionally the CLI), by hand.

Not part of the test suite.  With atheris (coverage-guided, libFuzzer)::

    pip install atheris                     # into the same venv as normcli
    python tools/fuzz_atheris.py -atheris_runs=200000          # readers
    python tools/fuzz_atheris.py -max_total_time=600 corpus/   # 10 min, keep a corpus
    FUZZ_CLI=1 python tools/fuzz_atheris.py -max_total_time=600  # also run the CLI

Without atheris (or with ``--plain``) it runs a plain random-mutation loop
over the same seeds::

    python tools/fuzz_atheris.py --plain --seconds 600 [--seed 1]

Every input is written as a ``.npy``, ``.npz`` or ``.png`` file (chosen by its
first byte) and loaded with :func:`normcli.files.expand_inputs` +
``Source.load`` under a 1 MiB limit.  Anything but a sane array or an
:class:`~normcli.errors.InputError` with a one-line message is a crash: with
atheris the input is saved as ``crash-*``; in plain mode it is saved under
``fuzz-crashes/`` and the loop goes on.  With ``FUZZ_CLI=1`` each input also
goes through ``normcli stats`` and ``normcli lrn -o DIR/``, which must exit 0,
or 1 with one ``normcli: error:`` line and no file written.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import struct
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from normcli.errors import InputError  # noqa: E402
from normcli.files import encode_png, expand_inputs  # noqa: E402

LIMIT = 1 << 20
SUFFIXES = (".npy", ".npz", ".png")
WORK = Path(tempfile.mkdtemp(prefix="normcli-atheris-",
                             dir="/dev/shm" if os.path.isdir("/dev/shm") else None))


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def seeds() -> list[bytes]:
    """Valid files of every kind, prefixed by the byte that selects the suffix."""
    rng = np.random.default_rng(0)
    npys = [
        _npy(rng.standard_normal((2, 3, 4)).astype(np.float32)),
        _npy(np.asfortranarray(np.arange(24, dtype=">i8").reshape(2, 3, 4))),
        _npy(np.array([[True, False]])),
        _npy(np.arange(6, dtype=np.float16).reshape(2, 3)),
    ]
    npzs = [_npz(a=np.ones((2, 2)), b=np.arange(6.0).reshape(1, 2, 3))]
    pngs = [
        encode_png(rng.integers(0, 255, (5, 7), dtype=np.uint8)),
        encode_png(rng.integers(0, 65535, (3, 4, 3), dtype=np.uint16)),
        encode_png(rng.integers(0, 255, (4, 4, 4), dtype=np.uint8)),
    ]
    return ([b"\x00" + d for d in npys] + [b"\x01" + d for d in npzs]
            + [b"\x02" + d for d in pngs])


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC, so that mutations reach the decoder."""
    out, pos = [data[:8]], 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + length]
        out.append(struct.pack(">I", len(payload)) + ctype + payload
                   + struct.pack(">I", zlib.crc32(ctype + payload)))
        pos += 12 + length
        if len(payload) < length:
            break
    return b"".join(out)


def check(data: bytes, cli: bool = False) -> None:
    """Raise AssertionError (or anything) if normcli mishandles this input."""
    if not data:
        return
    suffix = SUFFIXES[data[0] % 3]
    body = data[1:]
    if suffix == ".png" and len(data) > 1 and data[0] >= 128:
        body = fix_png_crcs(body)
    path = WORK / f"input{suffix}"
    path.write_bytes(body)
    start = time.perf_counter()
    try:
        for source in expand_inputs([path]):
            arr = source.load(max_bytes=LIMIT)
            assert arr.dtype.kind in "biuf" and arr.dtype.isnative and arr.flags.c_contiguous
            assert arr.nbytes <= LIMIT and arr.size >= 1
    except InputError as e:
        text = str(e)
        assert "\n" not in text and text.startswith(str(path)), text
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"slow input: {elapsed:.1f} s"
    if cli:
        check_cli(path)


def check_cli(path: Path) -> None:
    import warnings

    from click.testing import CliRunner

    from normcli.cli.main import cli

    out = WORK / "out"
    out.mkdir(exist_ok=True)
    for p in out.rglob("*"):
        if p.is_file():
            p.unlink()
    env = {"NORMCLI_MAX_BYTES": str(LIMIT), "NORMCLI_THREADS": "1"}
    for args in (["stats", str(path), "-q"], ["lrn", str(path), "-o", f"{out}/", "-q"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            result = CliRunner().invoke(cli, args, env=env)
        exc = result.exception
        if exc is not None and not isinstance(exc, SystemExit):
            raise AssertionError("".join(traceback.format_exception(exc)))
        assert result.exit_code in (0, 1), result.stderr
        if result.exit_code == 1:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("normcli: error: "), result.stderr
            assert not [p for p in out.rglob("*") if p.is_file()], "files left after an error"


def mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        op = rnd.randrange(7)
        pos = rnd.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[pos] ^= 1 << rnd.randrange(8)
        elif op == 1 and b:
            b[pos] = rnd.choice([0, 0xFF, 0x7F, 0x80, 0x20, 0x27, 0x28, 0x29, 0x2C])
        elif op == 2:
            b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif op == 3:
            del b[pos:pos + rnd.randint(1, 64)]
        elif op == 4:
            del b[pos:]
        elif op == 5:
            b[pos:pos] = b[pos:pos + rnd.randint(1, 64)]
        elif op == 6 and len(b) >= 4:  # an "interesting" 32-bit integer
            v = rnd.choice([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 65535, 65536, 100000])
            b[pos:pos + 4] = struct.pack(rnd.choice([">I", "<I"]), v)
    if b and rnd.random() < 0.5 and b[0] % 3 == 2:
        b[0] |= 0x80  # PNG: recompute CRCs in check()
    return bytes(b)


def save_crash(data: bytes, error: BaseException) -> Path:
    folder = Path("fuzz-crashes")
    folder.mkdir(exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    path = folder / f"crash-{name}.bin"
    path.write_bytes(data)
    (folder / f"crash-{name}.txt").write_text(
        "".join(traceback.format_exception(error)), encoding="utf-8")
    return path


def plain_loop(seconds: float, seed: int, cli: bool) -> int:
    rnd = random.Random(seed)
    pool = seeds()
    deadline = time.monotonic() + seconds
    runs = crashes = 0
    while time.monotonic() < deadline:
        data = mutate(rnd.choice(pool), rnd)
        runs += 1
        try:
            check(data, cli)
        except Exception as e:  # noqa: BLE001 - a finding, not a failure of the loop
            crashes += 1
            print(f"CRASH ({type(e).__name__}: {str(e)[:200]}) saved to {save_crash(data, e)}")
        if runs % 1000 == 0:
            print(f"{runs} inputs, {crashes} crashes", flush=True)
        if rnd.random() < 0.05 and len(pool) < 500:
            pool.append(data)  # keep some mutants as new seeds
    print(f"done: {runs} inputs in {seconds:.0f} s, {crashes} crashes")
    return 1 if crashes else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=True)
    parser.add_argument("--plain", action="store_true", help="random-mutation loop, no atheris")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    args, rest = parser.parse_known_args()
    cli = bool(os.environ.get("FUZZ_CLI"))
    try:
        if args.plain:
            raise ImportError
        import atheris
    except ImportError:
        if not args.plain:
            print("atheris is not installed: running the plain random-mutation loop")
        return plain_loop(args.seconds, args.seed, cli)

    corpus = [a for a in rest if not a.startswith("-")]
    for folder in corpus:  # give libFuzzer the seeds to start from
        Path(folder).mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(seeds()):
            (Path(folder) / f"seed-{i}").write_bytes(data)

    def one_input(data: bytes) -> None:
        check(data, cli)

    import PIL.PngImagePlugin  # noqa: F401

    import normcli.files.png  # noqa: F401 - loaded before instrumenting

    atheris.instrument_all()  # coverage feedback for normcli, numpy's Python parts, Pillow
    atheris.Setup([sys.argv[0], *rest], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
