"""The front end: source text -> AST -> checked program -> IR, without torch.

`source`/`diagnostics` (spans, rendering) -> `parser` (the only lark user) -> `syntax`
(the AST) -> `check/` (imports, declarations, argument binding via `signatures`, typing
with `value_types`, lowering) -> `program` (the checked program) and `ir` (the interned
DAG of `op_table` rows). `pretty` prints the AST back as canonical source.
"""
