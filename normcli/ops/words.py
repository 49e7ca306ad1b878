"""Each framework's words for the LRN parameters, mapped onto normcli's ``n`` and ``k``.

PyTorch and ONNX call the window ``size``, Caffe ``local_size``, TensorFlow
``depth_radius`` (a radius: the window is ``2r + 1``); TensorFlow and ONNX call
``k`` ``bias``.  :func:`lrn_words` accepts them where they mean what the
chosen convention's ``n`` means, and says what to use where they do not, so
that ``--size 5`` never silently becomes a radius or a neighbourhood.
"""

from __future__ import annotations

from normcli.errors import ParameterError
from normcli.ops.conventions import get_convention

__all__ = ["lrn_words", "WINDOW_WORDS"]

#: The words for the window parameter, and the conventions whose ``n`` they mean.
WINDOW_WORDS: dict[str, tuple[str, ...]] = {
    "size": ("pytorch", "onnx", "cudnn", "caffe"),
    "local_size": ("pytorch", "onnx", "cudnn", "caffe"),
    "depth_radius": ("tensorflow",),
}


def lrn_words(
    convention: str = "seed",
    *,
    n: int | None = None,
    size: int | None = None,
    local_size: int | None = None,
    depth_radius: int | None = None,
    k: float | None = None,
    bias: float | None = None,
) -> dict[str, object]:
    """``{"convention", "n", "k"}`` for :func:`normcli.ops.conventions.resolve_lrn`.

    ``size`` and ``local_size`` are accepted for the conventions whose ``n`` is
    a window size (pytorch, onnx, cudnn, caffe), ``depth_radius`` for
    tensorflow, ``bias`` for ``k`` everywhere; the convention name is
    case-insensitive.  Raises :class:`~normcli.errors.ParameterError` naming
    the word (``.param``) when it means something else in this convention,
    or when two words give the window (or ``k``) at once.

    >>> lrn_words("PyTorch", size=5, bias=2.0)
    {'convention': 'pytorch', 'n': 5, 'k': 2.0}
    >>> lrn_words("tensorflow", size=5)
    Traceback (most recent call last):
    ...
    normcli.errors.ParameterError: size=5: tensorflow's n is depth_radius, a radius (the \
window is 2r+1 channels); give depth_radius (or n) instead, or translate from a convention \
whose n is a window size
    """
    conv = get_convention(convention)
    given = {word: value for word, value in (("n", n), ("size", size),
                                             ("local_size", local_size),
                                             ("depth_radius", depth_radius))
             if value is not None}
    if len(given) > 1:
        words = ", ".join(given)
        raise ParameterError(f"{words} all give the window; give one of them",
                             param=list(given)[1], value=list(given.values())[1],
                             problem=f"gives the window as well as {list(given)[0]}; "
                                     "give one of them")
    for word, value in given.items():
        if word == "n" or conv.name in WINDOW_WORDS[word]:
            continue
        problem = _mismatch(conv.name, conv.n_means, word)
        raise ParameterError(f"{word}={value}: {problem}", param=word, value=value,
                             problem=f"{value}: {problem}")
    if k is not None and bias is not None and k != bias:
        raise ParameterError(f"bias={bias} and k={k} are the same parameter; give one",
                             param="bias", value=bias,
                             problem=f"{bias} and k={k} are the same parameter; give one")
    window = next(iter(given.values()), None)
    return {"convention": conv.name, "n": window, "k": k if k is not None else bias}


def _mismatch(name: str, n_means: str, word: str) -> str:
    if name == "tensorflow":
        return (f"{name}'s n is depth_radius, a radius (the window is 2r+1 channels); give "
                "depth_radius (or n) instead, or translate from a convention whose n is a "
                "window size")
    if word == "depth_radius":
        return (f"depth_radius is TensorFlow's radius; {name}'s n is the {n_means} "
                "(translate from tensorflow to get it)")
    return (f"{word} is a window size, but {name}'s n is a {n_means} (n=2 means c-1..c+1); "
            "give n, or translate from pytorch")
