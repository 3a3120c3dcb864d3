"""Bases to train and test on: synthetic ones with known truth, and the real CDNOW sample.

- ``retail``    a retail base: contacts, orders and what happened next (calls the three below)
- ``products``  the product side: per-contact SKU taste, repeat purchases, promotions
- ``email``     the e-mail side: campaigns, e-mail events and the truth behind them
- ``web``       web visits (``web_events``) whose behaviour heats before a conversion
- ``b2b``       a B2B lead base with a known conversion process (the ``lead`` score's)
- ``cdnow``     the CDNOW sample (Fader, Hardie & Lee 2005): loaders, calibration/holdout split
- ``accounts``  a platform's brands: one retail base per account, sizes skewed like real fleets
- ``hillstrom`` the Hillstrom e-mail campaign (MineThatData 2008) as a base (``scorecast import``)
"""
