"""Monitoring: what the scored patients look like against the ones the model learned from."""
