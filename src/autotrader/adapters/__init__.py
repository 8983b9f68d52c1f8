"""Adapters: the only modules that import databases, network clients, brokers or web frameworks."""
