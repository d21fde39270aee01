"""STFuse: infrared and visible image fusion by semisupervised transfer from multi-focus fusion."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``stfuse.Fuser`` without importing torch at ``import stfuse`` (the CLI dispatch stays fast)."""
    if name == "Fuser":
        from stfuse.inference.fuser import Fuser

        return Fuser
    raise AttributeError(f"module 'stfuse' has no attribute {name!r}")
