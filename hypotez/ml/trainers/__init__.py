"""Trainers: one interface (:mod:`hypotez.ml.trainers.base`), implementations registered by name."""
