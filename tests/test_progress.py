"""Progress lines of long work: one line per fit (tqdm's Keras callback), one per comparison."""

import keras
import numpy as np

from dlcourse.training import progress


def test_epoch_bar_is_one_line_with_the_metrics(capsys):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(
        np.zeros((8, 2)), np.ones(8), epochs=3, verbose=0, callbacks=[progress.epoch_bar("demo")]
    )
    out = capsys.readouterr()
    assert out.err == ""  # stdout: not red in a notebook
    assert out.out.count("\n") == 1  # one line, rewritten in place by carriage returns
    final = out.out.split("\r")[-1]
    assert final.startswith("demo: 100%") and "3/3" in final and "loss=" in final


def test_rows_bar_counts_rows(capsys):
    assert list(progress.rows_bar(["a", "b"], desc="table")) == ["a", "b"]
    final = capsys.readouterr().out.split("\r")[-1]
    assert final.startswith("table: 100%") and "2/2" in final
