"""File handling for normcli: safe readers, atomic writers, input expansion.

Inputs::

    sources = expand_inputs(["features/", "x.npz", "-"])   # cheap, checks existence
    for s in sources:
        arr = s.load(max_bytes=...)                          # InputError on bad data
        print(s.label, arr.shape, count_nonfinite(arr))

Outputs::

    out = output_path_for(s, "out/", ".png", mkdir=True)
    check_not_input(out, sources)
    write_array(out, result, force=False, png_bits=8)

Every problem with a file raises :class:`normcli.errors.InputError` or
:class:`normcli.errors.OutputError` with a one-line message.  The size limit
(``max_bytes``) defaults to ``NORMCLI_MAX_BYTES`` or 2 GiB
(:mod:`normcli.files.limits`).  This package does not import click or rich.
"""

from __future__ import annotations

from normcli._lazy import lazy_attributes
from normcli.files.atomic import StagedWrites, atomic_write, cleanup_stale_temps, same_file
from normcli.files.limits import DEFAULT_MAX_BYTES, MAX_BYTES_ENV, resolve_max_bytes
from normcli.files.npy import read_npy, read_npy_header, read_npy_stream, write_npy_stream
from normcli.files.npz import npz_members, read_npz_member
from normcli.files.output import (
    OUTPUT_SUFFIXES,
    check_not_input,
    output_path_for,
    plan_outputs,
    stage_array,
    write_array,
)
from normcli.files.sources import (
    SUPPORTED_SUFFIXES,
    Source,
    count_nonfinite,
    expand_inputs,
    load_inputs,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_BYTES_ENV",
    "OUTPUT_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "Source",
    "StagedWrites",
    "stage_array",
    "atomic_write",
    "check_not_input",
    "cleanup_stale_temps",
    "count_nonfinite",
    "decode_png",
    "encode_png",
    "encode_png_bytes",
    "expand_inputs",
    "find_layer",
    "load_inputs",
    "npz_members",
    "output_path_for",
    "plan_outputs",
    "read_npy",
    "read_npy_header",
    "read_npy_stream",
    "read_npz_member",
    "read_layers",
    "read_png",
    "read_running_stats",
    "read_image",
    "decode_image",
    "walk_inputs",
    "rescale_channels",
    "resolve_max_bytes",
    "same_file",
    "to_png_array",
    "to_png_image",
    "write_array",
    "write_npy_stream",
    "write_running_stats",
]


# The PNG and image names are imported on first use: most runs never touch an image (nor a
# model file, nor a framework's stored statistics).
__getattr__ = lazy_attributes(__name__, globals(), {
    "find_layer": "normcli.files.models",
    "read_layers": "normcli.files.models",
    "read_running_stats": "normcli.files.running_stats",
    "write_running_stats": "normcli.files.running_stats",
    "read_image": "normcli.files.images",
    "decode_image": "normcli.files.images",
    "walk_inputs": "normcli.files.walk",
    "encode_png_bytes": "normcli.files.png",
    "read_png": "normcli.files.png",
    "rescale_channels": "normcli.files.png",
    "to_png_array": "normcli.files.png",
    "to_png_image": "normcli.files.png",
    "decode_png": "normcli.files.pngcodec",
    "encode_png": "normcli.files.pngcodec",
})
