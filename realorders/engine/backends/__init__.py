"""Backends: one implementation of every port per deployment."""
