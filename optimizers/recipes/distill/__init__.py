"""The distill recipe: `recipe` registers it and trains the students; `thinner` makes a narrower or shallower copy
of a built-in teacher from its own weights; `loss` is what a student learns from.
"""
