"""The runtime: live models and data, terminal capture, CAM evaluation and metric evaluation.

`declaration_loading` turns declarations into models and datasets; `capture` takes a batch's
terminals; `cam_engine` evaluates many CAMs on one capture; `metric_evaluation` runs compiled
metrics over (cam x image) rows. It sits below the drivers (`synth`, `compat`, `run`) and
imports none of them.
"""
