"""alignkit: helpers for the alignkit workbook, one module per idea (see README.md).

Import what a chapter needs from its module, e.g. ``from alignkit.scale import current_scale``.
"""

__version__ = "0.1.0"
