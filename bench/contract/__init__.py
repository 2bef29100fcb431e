"""Contract and fuzz runs against Count (bench/README.md "Contract and fuzzing"): schemathesis over /openapi.json
and coverage-guided fuzzing of the parsers. The test suite runs both bounded; `python -m bench.contract` longer."""
