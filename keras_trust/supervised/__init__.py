"""Supervised training with the curvature optimizers: any Keras model's `fit()`.

`CurvatureModel(model)` trains a Keras model by `fit(x, y)` with `NaturalGradient` or
`TrustRegion`, the metric being the Fisher of the predictive distribution behind the
compiled loss (`predictive_kl`).
"""

from keras_trust.supervised.curvature_model import CurvatureModel
from keras_trust.supervised.predictive import predictive_kl

__all__ = ["CurvatureModel", "predictive_kl"]
