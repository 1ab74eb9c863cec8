"""dlcourse.validate: one positive-int check for the whole package."""

import numpy as np
import pytest

from dlcourse.validate import positive_int


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(2)])
def test_positive_integers_pass_as_int(value):
    assert positive_int(value, "n") == int(value)
    assert type(positive_int(value, "n")) is int


@pytest.mark.parametrize("value", [0, -1, True, False, 2.0, "3", None, np.float32(2)])
def test_anything_else_is_refused_with_its_name_and_value(value):
    with pytest.raises(
        ValueError, match=r"Expected epochs to be a positive integer\. Received: epochs="
    ):
        positive_int(value, "epochs")


def test_the_package_uses_it():
    """The same message from the places that used to check by hand."""
    from dlcourse.training import schedules

    with pytest.raises(ValueError, match="Expected total_steps to be a positive integer"):
        schedules.warmup_cosine(1e-3, total_steps=0)
