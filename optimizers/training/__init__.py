"""The fine-tuning loop shared by the recipes that train: settings to optimizer and schedule (`setup`), one
epoch and evaluation (`epochs`), what can be trained (`modes`), where a run stands (`state`) and its checkpoints
(`checkpoints`), all driven by `loop.fit`.
"""
