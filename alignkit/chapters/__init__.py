"""One package per chapter: each paper's pipeline, sizes, tasks and claims.

Shared modules (``alignkit.rewards``, ``alignkit.training``...) never import from here; a chapter
imports the shared modules it needs. :mod:`alignkit.chapters.index` maps a chapter id to its
module, notebook, recipes and recipe tasks.
"""
