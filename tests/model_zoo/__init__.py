"""Tests of the model zoo, mirroring the model_zoo package."""
