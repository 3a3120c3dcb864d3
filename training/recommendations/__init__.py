"""The recommendations score's parts (its ``fit`` is ``training/scores/recommendations.py``):

- ``model``: ``RecommendationModel`` (repeat + explore), its inputs as codes, the NumPy reference scores;
- ``graph``: the served ONNX graph built from a fitted model's arrays;
- ``selection``: the blend chosen on a time holdout, and the holdout figures;
- ``baselines``: the simple baselines the model must beat there.
"""
