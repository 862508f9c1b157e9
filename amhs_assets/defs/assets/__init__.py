"""Thin Dagster assets, one module per stage; the logic lives in the pure modules."""
