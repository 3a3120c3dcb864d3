"""The B2B ``lead`` score: P(a lead converts within 21 days), 1–99, a tier and the reasons why.

- ``scorecard``  the model: a binned logistic-regression scorecard, its ONNX graph, its reasons
- ``rules``      rule-based lead scoring as configuration: criteria with points, country
                 filters, weights
- ``training``   read a B2B base folder and fit the score (what ``scorecast train`` calls); put
                 new rules into a trained model (``scorecast lead-rules``)
"""
