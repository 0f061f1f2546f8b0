"""tierbot: run a branch's experiment on a hardware tier and compare its outputs against main's."""

__version__ = "0.1.0"
