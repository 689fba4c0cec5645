"""The run layer: `camlang run` on a checked program.

`program` drives a whole run through the steps `plan` lays out (each synthesis before the first
action that needs it); `state` holds what it has loaded and produced; `cache` keeps finished
results across crashes; `evaluate` (with `eval_records`, `eval_summary`) and `check` (with
`questions`) carry out those actions, `actions` names them; `export` writes standalone modules.
It sits on top of `synth`, `smt` and `concepts`.
"""
