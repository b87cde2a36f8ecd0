"""End-to-end tests of the realorders console script."""
