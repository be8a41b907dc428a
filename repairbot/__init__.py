"""RepairBot: detects failed GPU nodes and repairs them, safely, with nobody awake."""

__version__ = "0.1.0"
