"""Each architecture's `reordering` says exactly what its `transform` does to a 2-D weight
(a permutation of rows and columns) or declines: the quality report's unmerging adapter
relies on it to carry a LoRA's factors into GGUF's layout."""

from __future__ import annotations

import numpy as np
import pytest

from converters.checkpoint.config import read_model_config
from converters.checkpoint.safetensors_io import Checkpoint
from converters.gguf.architectures import architecture_for


@pytest.mark.parametrize("family", ["qwen3", "qwen35", "llama"])
def test_reordering_matches_transform(sources, family):
    path = getattr(sources, family)
    arch = architecture_for(read_model_config(path))
    rng = np.random.default_rng(0)
    reordered = declined = 0
    with Checkpoint(path) as checkpoint:
        for name in checkpoint.names():
            shape = tuple(checkpoint.info(name).shape)
            order = arch.reordering(name, shape)
            if len(shape) != 2:
                assert order is None, name
                continue
            if order is None:
                declined += 1
                continue
            weight = rng.standard_normal(shape).astype(np.float32)
            expected = weight
            if order.rows is not None:
                expected = expected[order.rows]
                reordered += 1
            if order.columns is not None:
                expected = expected[:, order.columns]
                reordered += 1
            np.testing.assert_array_equal(arch.transform(name, weight.copy()), expected,
                                          err_msg=name)
    # The families that reorder do reorder something (Llama's q/k rows, Qwen3.5's V heads
    # in rows and in out_proj's columns); every 2-D weight is a plain reordering (Qwen3.5's
    # conv1d, reshaped from 3-D, is declined above).
    assert (reordered > 0) == (family != "qwen3"), reordered
    assert declined == 0
