"""clinview core: everything that computes. Never imports Qt or :mod:`viewer`.

The viewer and the ``clinview`` CLI reach this package only through
:mod:`inference.api`, :mod:`inference.types` and :mod:`inference.errors`.
"""

__all__: list[str] = []
__version__ = "0.1.0"
