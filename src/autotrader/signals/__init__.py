"""Trading signals from outside the rule library: the prediction schema and stored-prediction files."""

from autotrader.signals.prediction import Prediction

__all__ = ["Prediction"]
