"""The PanDA facility's own Python code: services, probes and operational daemons."""

__version__ = "0.1.0"
