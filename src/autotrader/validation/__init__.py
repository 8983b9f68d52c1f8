"""Validation: lookahead checks, walk-forward, Monte Carlo, stress scenarios, overfitting statistics."""
