"""``scorecast report``: every score's validation report as one self-contained HTML page.

Everything comes from the models' metadata (``metrics`` and ``params["report"]``, lead's
``params["validation"]``), so a report can be written for any version in a repository without
the training data. One module per family of scores, one function per section; charts are
matplotlib PNGs embedded as base64.

- ``page``          the page: one section per score, in the order of ``SECTIONS``, written atomically
- ``charts``        what every section draws with: figures as base64 PNGs, tables, numbers
- ``retail``        rfm, affinity, cross_sell, clv and churn
- ``products``      recommendations and promo_appetence
- ``email_scores``  engagement, pressure and interests
- ``web``           web_heat and segments
- ``lead``          the lead scorecard's holdout validation
"""

from .page import SECTIONS, render_page, write_report

__all__ = ["SECTIONS", "render_page", "write_report"]
