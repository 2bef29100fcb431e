"""PromQL: a parser (parser.py → ast.py) and a columnar evaluator (evaluate.py) for the subset dashboards use."""
