"""pipeline subpackage of clinview core (Qt-free)."""
