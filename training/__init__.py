"""Fitting the scores: simulated and bundled bases in, ONNX models with their metadata out.

It imports kernels and the bottom layer (``scorecast/*.py``), never the server; only the entry
points (``scorecast.cli``) and tests import it (``tests/test_packaging.py`` enforces both).
Its modules and subpackages, by job:

A training run
- ``train``         ``scorecast train``: fit every requested score of a base into a repository
- ``run``           what one run shares among the score fitters
- ``evaluation``    holdout metrics every score is validated with (AUC, lift, calibration, Qini,
                    recall/NDCG)
- ``onnx_export``   attach scorecast metadata, save atomically, convert scikit-learn classifiers

Subpackages
- ``scores``        one module per served score (``rfm``, ``affinity``, ``recommendations`` …)
- ``recommendations``  the recommendations model, its ONNX graph, blend selection and baselines
- ``clv``           the repeat-purchase models (BG/NBD, MBG/NBD, Pareto/NBD, Gamma-Gamma), their
                    ONNX graphs and holdout validation
- ``lead``          the B2B ``lead`` scorecard, its rules as configuration, and its training
- ``simulate``      synthetic bases with known truth (retail, e-mail, web, B2B) and the CDNOW sample
- ``report``        ``scorecast report``: every score's validation as one HTML page

Data: ``datasets/`` holds the bundled real samples (``PROVENANCE.md`` says where each comes
from), ``web_config.json`` the default web-heat page configuration.
"""
