"""gpudoctor: can containers on this host use its NVIDIA GPUs, and if not, which layer is broken?"""

__version__ = "0.1.0"
