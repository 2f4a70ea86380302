"""Facts: the only code that reads the machine (through a Host; see host.py)."""
