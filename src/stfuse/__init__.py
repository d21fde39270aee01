"""STFuse: infrared and visible image fusion by semisupervised transfer from multi-focus fusion."""

__version__ = "0.1.0"
