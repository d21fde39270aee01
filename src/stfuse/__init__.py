"""STFuse: infrared and visible image fusion by semisupervised transfer from multi-focus fusion."""

from stfuse.utils.lazy import lazy_exports

__version__ = "0.1.0"

# ``stfuse.Fuser`` without importing torch at ``import stfuse`` (the CLI dispatch stays fast).
__getattr__, __dir__ = lazy_exports(__name__, {"Fuser": "stfuse.inference.fuser"})
