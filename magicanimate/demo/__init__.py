"""The synthetic demo: the recipe that trains the bundled tiny model and the benchmark that scores it.

``recipe``: builds the toy world's base folder (tiny UNet + trained tiny VAE + a zero text embedding) and
ships a trained pipeline with sample inputs into ``demo/``. ``benchmark``: runs a pipeline over the synthetic
test split and compares it with ground truth and with the repeated-reference baseline.
"""
