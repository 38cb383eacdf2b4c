"""The parallelize recipe: `recipe` measures the ways of serving the model on this worker, `search` decides which
points to measure and which plan wins, `serving` writes the plan and a runnable file that serves with it.
"""
