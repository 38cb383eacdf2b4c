"""The prune recipe: `recipe` registers it and dispatches to a method (`unstructured`, `structured`,
`semi_structured` with its 2:4 pattern in `two_four` and GPU timing in `two_four_timing`); `layers` finds what can be
pruned and `finetune` wins accuracy back between steps.
"""
