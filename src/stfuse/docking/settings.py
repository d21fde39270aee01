"""Everything that defines a docking run apart from its sources, torch-free: the detector's schedule
(:class:`TrainSettings`), the protocol settings (:class:`DockingConfig`), the named sizes
(:data:`DOCKING_PRESETS`) and the option names. ``stfuse dock --help`` takes its choices from here without
importing torch; the protocol, the trainer and the sources use the same objects."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from stfuse.docking.errors import DockingError

__all__ = ["COLOR_MODES", "DOCKING_PRESETS", "LABEL_SETS", "DockingConfig", "TrainSettings"]

#: which label version scores every source
LABEL_SETS = ("fusion", "infrared", "visible")
#: how a source is given to the detector
COLOR_MODES = ("luma", "rgb")


@dataclass(frozen=True)
class TrainSettings:
    """The detector's schedule; identical for every source of one protocol run."""

    image_size: tuple[int, int] = (320, 240)  # W, H of every image given to the detector
    crop_size: tuple[int, int] | None = None  # W, H of training crops (None: the whole image)
    epochs: int = 12
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 16
    warmup_epochs: float = 1.0
    scale_range: tuple[float, float] = (0.75, 1.3)
    hflip: float = 0.5
    photometric: float = 0.15  # brightness/contrast jitter amplitude
    min_visible: float = 0.4  # a cropped box is kept if this fraction of its area stays in view


@dataclass(frozen=True)
class DockingConfig:
    """Everything that defines a protocol run apart from the sources."""

    train: TrainSettings = field(default_factory=TrainSettings)
    seeds: tuple[int, ...] = (0, 1, 2)
    labels: str = "fusion"
    color: str = "luma"
    limit_train: int | None = None
    limit_test: int | None = None
    num_qualitative: int = 4
    score_threshold: float = 0.3
    device: str = "auto"
    threads: int | None = None

    @staticmethod
    def preset(name: str, **overrides: object) -> DockingConfig:
        """``tiny`` (tests, seconds), ``cpu`` (the documented CPU table) or ``full`` (GPU, minutes)."""
        if name not in DOCKING_PRESETS:
            raise DockingError(f"unknown preset {name!r}; choose one of {', '.join(DOCKING_PRESETS)}")
        base = DOCKING_PRESETS[name]
        train_fields = {f.name for f in dataclasses.fields(TrainSettings)}
        train_over = {k: v for k, v in overrides.items() if k in train_fields and v is not None}
        other = {k: v for k, v in overrides.items() if k not in train_fields and v is not None}
        unknown = set(other) - {f.name for f in dataclasses.fields(DockingConfig)}
        if unknown:
            raise DockingError(f"unknown docking settings: {', '.join(sorted(unknown))}")
        return dataclasses.replace(base, train=dataclasses.replace(base.train, **train_over), **other)


#: the docking sizes by name (``stfuse dock --preset``, ``DockingConfig.preset(name)``)
DOCKING_PRESETS: dict[str, DockingConfig] = {
    "tiny": DockingConfig(
        train=TrainSettings(image_size=(128, 96), epochs=2, batch_size=4, width=8, warmup_epochs=0.5),
        seeds=(0,),
        limit_train=8,
        limit_test=4,
        num_qualitative=2,
    ),
    "cpu": DockingConfig(
        train=TrainSettings(image_size=(320, 240), crop_size=(192, 144), epochs=24, batch_size=8, width=16),
        seeds=(0, 1, 2),
    ),
    "full": DockingConfig(
        train=TrainSettings(image_size=(640, 480), crop_size=(384, 288), epochs=150, batch_size=8, width=32),
        seeds=(0, 1, 2),
    ),
}
