"""clinical subpackage of clinview core (Qt-free)."""
