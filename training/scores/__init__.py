"""One module per served score: each builds its features, fits, validates on a holdout and
exports an ONNX model with its metadata (``training.train`` calls them).

Retail (orders)
- ``rfm``                recency, frequency, monetary quintiles 1–5 and a named segment
- ``customer_value``     ``clv`` and ``churn``: repeat-purchase models chosen by holdout fit
- ``customer_value_holdout``  both checked against the real CDNOW holdout (value ranking,
                     decisive date; ``python -m`` prints the tables)
- ``affinity``           P(purchase in product group G within the horizon), per group
- ``cross_sell``         P(first purchase in group G) for contacts who never bought in G
- ``segments``           behavioural micro-segments, a k-means clustering

Products
- ``recommendations``           the K SKUs each contact is most likely to buy next (its model,
                                graph, selection and baselines: ``training.recommendations``)
- ``promo_appetence``           how much a promotion raises a contact's purchase probability

E-mail
- ``engagement``     RFO and RFC quintiles, P(open) and P(click) at the next send
- ``pressure``       recent sends, a fatigue flag and a recommended wait before the next send
- ``interests``      a contact's top-K campaign keywords and their time-decayed weights
- ``email_events``   what the e-mail scores learn from besides features: next-send labels,
                     opens by send gap

Web
- ``web_heat``       density, value, category, heat and its quartile (GetQuanty's method)

The ``lead`` score lives in ``training.lead``, the CLV models in ``training.clv``.
"""
