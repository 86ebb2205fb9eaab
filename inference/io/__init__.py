"""io subpackage of clinview core (Qt-free)."""
