"""Property-based tests of the public API with hypothesis: ``Fuser.fuse``, ``Fuser.fuse_luminance`` and the
metric functions get random shapes (0-d to 5-d), dtypes, value ranges, NaN/inf and mismatched pairs. Every
input gives a valid result of the right size and range, or one ``ValueError``/``TypeError`` that names the
argument at fault. A tiny randomly initialised network on images of at most 8 pixels a side keeps each
example to milliseconds (``STFUSE_HYPOTHESIS_EXAMPLES`` changes the count, 500 by default)."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from stfuse.inference import Fuser  # noqa: E402
from stfuse.metrics import METRIC_NAMES  # noqa: E402
from stfuse.models import STFuseNet  # noqa: E402

EXAMPLES = int(os.environ.get("STFUSE_HYPOTHESIS_EXAMPLES", "500"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a CI failure reproduces locally
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
DTYPES = [np.uint8, np.uint16, np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_, np.complex64]
SPECIAL = [math.nan, math.inf, -math.inf, -0.5, 1.5, 255.0, -1e-9, 1.0 + 1e-9]


@pytest.fixture(scope="module")
def fuser() -> Fuser:
    torch.manual_seed(0)
    return Fuser(STFuseNet(preset="tiny"), device="cpu", channels_last=False)


def _names(error: Exception, *roles: str) -> bool:
    """The message is one line and names at least one of ``roles`` as a word."""
    text = str(error)
    return "\n" not in text and any(re.search(rf"(?<![\w]){role}(?![\w])", text) for role in roles)


VALID_DTYPES = [np.uint8, np.uint16, np.float32, np.float64]


@st.composite
def arrays(draw, shape=None, valid: bool = False, dtypes=None):
    """A numpy array of a random shape: with ``valid``, pixels of an image dtype in range; else any dtype, with
    NaN, ±inf and out-of-range values mixed in."""
    dtype = np.dtype(draw(st.sampled_from(dtypes or (VALID_DTYPES if valid else DTYPES))))
    if shape is None:
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=8))
    if dtype.kind in "fc":
        width = 16 if dtype == np.float16 else 32
        unit = st.floats(0.0, 1.0, width=width)
        elements = unit if valid else st.one_of(unit, st.sampled_from(SPECIAL))
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def images(draw, shape=None, valid: bool | None = None, container: str | None = None, dtypes=None):
    """What a caller may hand the API: a numpy array, a tensor, or something that is no image at all. A valid
    image has an image dtype and values in range; otherwise any dtype, with NaN, ±inf and out-of-range values."""
    valid = draw(st.booleans()) if valid is None else valid
    array = draw(arrays(shape=shape, valid=valid, dtypes=dtypes if valid else None))
    container = container or draw(
        st.sampled_from(["numpy", "tensor", "other"] if not valid else ["numpy", "tensor"])
    )
    if container == "tensor":
        return torch.from_numpy(np.ascontiguousarray(array))
    if container == "other":
        return draw(st.sampled_from([None, 0.5, "ir.png", [[0.1, 0.2]], array.tolist()]))
    return array


@st.composite
def image_sets(draw, count: int, plausible_shapes, container: str | None = None, dtypes=None):
    """``count`` images: half the time a valid set (one plausible shape, image dtypes) with sometimes one
    image spoiled (another shape, dtype or container, or NaN/inf/out-of-range values); else unrelated images."""
    if draw(st.booleans()):
        shape = draw(plausible_shapes if draw(st.integers(0, 3)) else IMAGE_SHAPES)
        chosen = container or draw(st.sampled_from(["numpy", "tensor"]))
        found = [draw(images(shape=shape, valid=True, container=chosen, dtypes=dtypes)) for _ in range(count)]
        if draw(st.booleans()):
            spoilt = draw(st.integers(0, count - 1))
            found[spoilt] = draw(images(shape=shape if draw(st.booleans()) else None))
        return tuple(found)
    any_shape = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=8)
    return tuple(
        draw(images(shape=draw(st.one_of(any_shape, plausible_shapes)), container=container))
        for _ in range(count)
    )


IMAGE_SHAPES = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),  # H×W
    st.tuples(st.integers(1, 8), st.integers(1, 8), st.sampled_from([1, 3, 4])),  # H×W×C (numpy)
    st.tuples(st.sampled_from([1, 3, 4]), st.integers(1, 8), st.integers(1, 8)),  # C×H×W (tensor)
    st.tuples(st.integers(1, 2), st.sampled_from([1, 3]), st.integers(1, 8), st.integers(1, 8)),  # N×C×H×W
)


def pairs():
    return image_sets(2, IMAGE_SHAPES)


def _spatial(image) -> tuple[int, int]:
    shape = tuple(image.shape)
    if isinstance(image, np.ndarray):
        return shape[:2]
    return shape[-2:]


@PROPERTY
@given(pair=pairs())
def test_fuse_returns_a_valid_image_or_one_error_naming_the_argument(fuser, pair):
    ir, vi = pair
    try:
        out = fuser.fuse(ir, vi)
    except (ValueError, TypeError) as error:
        assert _names(error, "ir", "vi"), f"{type(error).__name__} names neither ir nor vi: {error}"
        event(f"refused: {type(error).__name__}")
        return
    event("fused")
    assert type(out) is type(vi)
    assert _spatial(out) == _spatial(vi)
    values = out.numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    if values.dtype.kind == "f":
        assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
    assert values.dtype == (vi.numpy().dtype if isinstance(vi, torch.Tensor) else vi.dtype)


def luminance_pairs():
    shapes = st.tuples(st.integers(1, 2), st.just(1), st.integers(1, 8), st.integers(1, 8))
    return image_sets(2, shapes, container="tensor", dtypes=[np.float32, np.float64, np.float16])


def _castable(value) -> bool:
    if np.iscomplexobj(value):
        return False
    try:
        np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return False
    return True


@PROPERTY
@given(pair=luminance_pairs())
def test_fuse_luminance_returns_a_valid_image_or_one_error_naming_the_argument(fuser, pair):
    ir, vi_y = pair
    try:
        out = fuser.fuse_luminance(ir, vi_y)
    except (ValueError, TypeError) as error:
        assert _names(error, "ir", "vi_y"), f"{type(error).__name__} names neither ir nor vi_y: {error}"
        event(f"refused: {type(error).__name__}")
        return
    event("fused")
    assert out.dtype == torch.float32 and out.shape == ir.shape
    assert bool(torch.isfinite(out).all()) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.fixture(scope="module")
def suite():
    from stfuse.metrics import MetricSuite

    return MetricSuite("cddfuse")


def metric_triplets():
    # an image batch of a size every metric of the preset accepts (VIF needs 41×41), or any shape
    shapes = st.tuples(st.integers(1, 2), st.sampled_from([1, 3]), st.integers(41, 48), st.integers(41, 48))
    return image_sets(3, shapes, container="tensor", dtypes=[np.uint8, np.float32, np.float64])


@PROPERTY
@given(triplet=metric_triplets())
def test_metric_suite_gives_one_value_per_image_or_one_error_naming_the_argument(suite, triplet):
    from stfuse.metrics.inputs import prepare_batch

    fused, ir, vi = triplet
    try:
        values = suite(fused, ir, vi)
    except (ValueError, TypeError) as error:
        # a size all three images share is named by the metric that needs it ("SF needs ... 2×2 pixels")
        assert _names(error, "fused", "ir", "vi", *METRIC_NAMES), (
            f"{type(error).__name__} names no argument: {error}"
        )
        event(f"refused: {type(error).__name__}")
        return
    event("measured")
    batch = fused.shape[0] if fused.ndim == 4 else 1
    # Constant images make some values undefined by their reference formulas (CC and SCD divide by a zero
    # deviation, of an image or of a difference of two; cddfuse's PSNR takes the log of a black image's
    # peak); textured images that differ in texture give finite values. "Textured" is judged on the grey
    # levels the metrics read (after scaling and quantising) and exactly (max > min): a float32 standard
    # deviation of a constant image can come out a rounding error above 0.
    grey = prepare_batch(fused, ir, vi, data_range=suite.data_range, quantize=suite.quantize)
    f, a, b = grey.fused, grey.ir, grey.vi
    textured = all(bool((x.amax(dim=(-2, -1)) > x.amin(dim=(-2, -1))).all()) for x in (f, a, b, f - a, f - b))
    for name, value in values.items():
        assert value.shape == (batch,), name
        assert value.dtype == torch.float64, name
        if textured:
            assert bool(torch.isfinite(value).all()), f"{name} is not finite on textured images: {value}"


@PROPERTY
@given(image=image_sets(1, IMAGE_SHAPES, container="tensor").map(lambda found: found[0]))
def test_to_gray_255_gives_grey_0_to_255_or_one_error_naming_the_argument(image):
    from stfuse.metrics import to_gray_255

    try:
        gray = to_gray_255(image, role="fused")
    except (ValueError, TypeError) as error:
        assert _names(error, "fused"), f"{type(error).__name__} does not name the argument: {error}"
        event(f"refused: {type(error).__name__}")
        return
    event("converted")
    assert gray.ndim == 3 and gray.dtype == torch.float64
    assert gray.shape[-2:] == image.shape[-2:]
    if gray.numel():
        assert float(gray.min()) >= 0.0 and float(gray.max()) <= 255.0
