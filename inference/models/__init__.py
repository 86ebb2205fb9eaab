"""models subpackage of clinview core (Qt-free)."""
