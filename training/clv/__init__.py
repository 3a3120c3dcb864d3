"""Customer-lifetime-value models: who buys again, how often, and how much per purchase.

Each model is named for its paper and reproduces its published estimates (see the tests):
- ``bg_nbd``       BG/NBD repeat buying (Fader, Hardie & Lee 2005): ``BetaGeoModel``
- ``mbg_nbd``      MBG/NBD repeat buying (Batislam, Denizel & Filiztekin 2007)
- ``pareto_nbd``   Pareto/NBD repeat buying (Schmittlein, Morrison & Colombo 1987)
- ``gamma_gamma``  spend per transaction (Fader, Hardie & Lee 2005): ``GammaGammaModel``

Around them:
- ``graph``        the ONNX graphs of the served quantities (expected purchases, P(alive), value)
- ``validation``   calibration/holdout validation of the repeat-purchase models on an orders table
- ``calibrated_value``  the rule behind ``clv.value``, chosen inside the calibration period among
                   a regression on BTYD quantities, BTYD and naive

The ``clv`` and ``churn`` scores that choose among them are ``training.scores.customer_value``.
"""
