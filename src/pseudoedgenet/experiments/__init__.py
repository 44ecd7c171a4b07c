"""Experiment drivers: cross-validation, result tables, figures."""
