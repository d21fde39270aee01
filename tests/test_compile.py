"""``Fuser(compile=True)``: torch.compile with inductor's weight freezing, against eager, on odd image sizes.

A file of its own: one inductor compile of the network costs minutes of CPU on 2 cores, so ``--dist loadfile``
can give it a worker of its own instead of lengthening test_inference.py's.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch._dynamo.config
from test_inference import scene, tiny_net  # tests/ is on sys.path under pytest (no package: rootdir import)

from stfuse.inference.fuser import Fuser


@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile on CPU generates C++ and needs a C++ compiler, which this machine lacks",
)
def test_compiled_and_frozen_network_matches_eager_on_two_sizes_with_one_compile() -> None:
    net = tiny_net()
    eager, compiled = Fuser(net), Fuser(net, compile=True)
    # Both sizes miss the downsample factor (the padded path). The second must reuse the first's graph: dynamic
    # shapes, no recompilation per size (which would cost each new image size minutes here).
    for index, (height, width) in enumerate(((37, 50), (45, 58))):
        ir = torch.from_numpy(scene(height, width))[None, None]
        vi = torch.from_numpy(scene(height, width, seed=2))[None, None]
        expected = eager.fuse_luminance(ir, vi)
        with torch._dynamo.config.patch(error_on_recompile=index > 0):
            got = compiled.fuse_luminance(ir, vi)
        assert got.shape == expected.shape == (1, 1, height, width)
        assert (got - expected).abs().max() < 1e-4
