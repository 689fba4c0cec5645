"""The execution layer: a checked program run on live models and data.

`declaration_loading` turns declarations into models and datasets; `capture` takes a
batch's terminals; `cam_engine` evaluates many CAMs on one capture; `metric_evaluation`
runs compiled metrics over (cam x image) rows; `run_state`/`run_cache` hold what a run
has loaded and produced; `run_actions` and `run_program` drive `camlang run`.
"""
