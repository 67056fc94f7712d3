"""Mutation testing of the defences (``make mutate``): the score per module and the equivalent mutants."""
