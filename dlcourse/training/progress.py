"""Progress of long work in a notebook or a log: one line per ``fit``, updated in place.

A lesson's training cell otherwise shows nothing for a minute or more. :func:`epoch_bar` is
tqdm's own Keras callback (``tqdm.keras.TqdmCallback``) with the epoch bar only (no per-batch
bar) and the latest metrics beside it, written as plain text to stdout: one line in Jupyter
(the carriage returns rewrite it), a few short segments in an executed notebook or a
``dlcourse run`` log, and no widget state to store.
"""

from __future__ import annotations

import sys

from dlcourse.quiet import import_keras

import_keras()


def epoch_bar(desc: str = "epochs", **tqdm_kwargs):
    """A Keras callback: one progress line over the epochs of a ``fit``, metrics beside it.

    Args:
        desc: the label in front of the bar (e.g. the model's name).
        **tqdm_kwargs: passed on to ``tqdm`` (``disable=True`` turns it off).

    Example: ``model.fit(x, y, epochs=8, verbose=0, callbacks=[epoch_bar("U-Net")])`` shows
    ``U-Net: 100%|#####| 8/8 [00:41<00:00, 5.1s/epoch, loss=0.312]`` when it is done.
    """
    from tqdm.keras import TqdmCallback
    from tqdm.std import tqdm

    options = {"file": sys.stdout, "desc": desc, "ncols": 100, "ascii": True, "mininterval": 0}
    options.update(tqdm_kwargs)
    return TqdmCallback(verbose=0, tqdm_class=tqdm, **options)


def rows_bar(items, desc: str = "rows", **tqdm_kwargs):
    """Iterate ``items`` with a one-line progress bar (comparison tables, several models)."""
    from tqdm.std import tqdm

    options = {"file": sys.stdout, "desc": desc, "ncols": 100, "ascii": True, "mininterval": 0}
    options.update(tqdm_kwargs)
    return tqdm(items, **options)
