"""Plain NumPy references for the lecture's upsampling operations — written to be read.

Lessons show them, tests check ``dlcourse.layers`` against them, and graders compare students'
answers with them. Every function takes and returns NumPy arrays; images are (H, W), (H, W, C) or
a batch (N, H, W, C), channels last. Loops are kept where the loop is what the lecture explains.

- Unpooling (``unpooling.py``): ``nearest_unpool``, ``bed_of_nails_unpool``,
  ``max_pool_with_switches`` and ``max_unpool``.
- Convolution (``convolution.py``): ``conv2d``, ``conv_transpose2d`` (scatter-add),
  ``conv_matrix`` (convolution = ``M @ x``, transposed convolution = ``M.T @ y``),
  ``overlap_count`` (the cause of checkerboard artifacts).
- Sizes (``sizes.py``): ``conv_output_size``, ``conv_transpose_output_size``, ``same_padding``,
  all equal to what Keras computes.
"""

from dlcourse.reference.convolution import conv2d, conv_matrix, conv_transpose2d, overlap_count
from dlcourse.reference.sizes import conv_output_size, conv_transpose_output_size, same_padding
from dlcourse.reference.unpooling import (
    bed_of_nails_unpool,
    max_pool_with_switches,
    max_unpool,
    nearest_unpool,
)

__all__ = [
    "bed_of_nails_unpool",
    "conv2d",
    "conv_matrix",
    "conv_output_size",
    "conv_transpose2d",
    "conv_transpose_output_size",
    "max_pool_with_switches",
    "max_unpool",
    "nearest_unpool",
    "overlap_count",
    "same_padding",
]
