"""magicanimate: an open, tested reimplementation of MagicAnimate (Xu et al., 2023, arXiv 2311.16498)."""

__version__ = "0.1.0"
