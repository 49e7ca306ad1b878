"""``normcli lrn``: local response normalization of each input."""

from __future__ import annotations

import click

from normcli.cli.command import NormcliCommand
from normcli.cli.conventions import conventions_text
from normcli.cli.frameworks import CHANNEL_AXIS, model_layer, model_options
from normcli.cli.options import Display, given, io_options, lrn_options, run_options
from normcli.cli.preview import finish_preview, make_preview, preview_option
from normcli.cli.report import check_stdout, display_options, progress_bar, show

EXAMPLES = """\b
Examples:
  normcli lrn --mode inter x.npy -o y.npy
  normcli lrn --mode intra --n 2 map.npy -o out.png
  normcli lrn --convention pytorch --n 4 features/ -o normed/
  normcli lrn --convention tensorflow --depth-radius 2 --bias 2 features/ -o normed/
  normcli lrn conv1.npy --from-onnx model.onnx --node norm1 -o norm1.npy
  normcli lrn sample_data/seed_inter.npy --k 0 --alpha 1 --beta 1 --n 2
  normcli lrn features/ -o - | normcli batchnorm - --per channel -o b.npy"""

HELP = f"""Local response normalization of each INPUT (.npy, .npz, image, DIR, -).

Inter-channel LRN divides each value by (k + alpha' * sum of squares of the
neighbouring channels) ** beta; intra-channel LRN sums over a square window
within the value's own channel. What n means, where an even window's extra
element goes and how alpha is divided follow --convention:

{conventions_text()}
"""


@click.command(
    cls=NormcliCommand, epilog=EXAMPLES, help=HELP,
    short_help="Local response normalization (inter- or intra-channel, six conventions).",
)
@lrn_options
@model_options
@CHANNEL_AXIS
@io_options()
@preview_option
def lrn(preview, inputs, from_onnx, from_caffe, node, layer, **kwargs) -> None:
    from normcli import runs
    from normcli.runs.porting import lrn_settings

    display, options = Display.pop(kwargs), run_options(kwargs)
    settings = {name: given(name) if name in ("mode", "convention") else kwargs[name]
                for name in ("mode", "convention", "n", "k", "alpha", "beta", "size",
                             "local_size", "depth_radius", "bias")}
    params = lrn_settings(**{k: v for k, v in settings.items() if v is not None},
                          from_onnx=from_onnx, from_caffe=from_caffe,
                          layer=model_layer(node, layer, from_onnx, from_caffe))
    check_stdout(display, options)
    title, _, subtitle = params.describe().partition(": ")
    recorder = make_preview(preview, title=title, subtitle=subtitle, force=options["force"],
                            channels_last=options["channels_last"])
    with progress_bar(display) as bar:
        report = runs.lrn(inputs, params=params, progress=bar, preview=recorder, **options,
                          **display_options(display))
    show(report, display)
    finish_preview(recorder, quiet=not display.table)
