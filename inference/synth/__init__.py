"""synth subpackage of clinview core (Qt-free)."""
