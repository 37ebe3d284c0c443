"""Robust evaluation: accuracy under attacks with checked threat model (``accuracy``), the
``nuat eval`` machinery (``registry``, ``runner``, ``state``, ``report``, ``evaluate``), model
loading (``targets``) and the gradient-masking checks of ``nuat sanity`` (``sanity``, ``surface``).

Submodules are imported where used; importing ``nuat.eval`` loads nothing heavy.
"""
