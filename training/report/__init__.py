"""``scorecast report``: every score's validation report as one self-contained HTML page.

Everything comes from the models' metadata (``metrics`` and ``params["report"]``, lead's
``params["validation"]``), so a report can be written for any version in a repository without
the training data. One module per family of scores, one function per section; charts are
matplotlib PNGs embedded as base64.
"""

from .page import SECTIONS, render_page, write_report

__all__ = ["SECTIONS", "render_page", "write_report"]
