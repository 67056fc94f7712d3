"""Plugins: one feature per module, each with ``loader = lightbulb.Loader()``.  Commands stay thin."""
