# The two commands the README starts with: `make demo` and `make test`.
# Each sets up its own virtualenv on first use (scripts/bootstrap).
.PHONY: demo replay-example test unit bench bench-quick setup clean dynamodb-local prometheus

setup:
	@scripts/bootstrap

# The main job on an embedded default: broker, DynamoDB Local, two workers,
# injected faults, findings as they are confirmed, a summary (auditor/demo.py).
demo: setup dynamodb-local
	.venv/bin/auditor demo

# The offline replay of the example dump shipped in examples/.
replay-example: setup
	.venv/bin/auditor replay examples/dump.kcat.jsonl.gz \
	  --messages-export examples/export/messages \
	  --counters-export examples/export/chat_counters \
	  --report /tmp/auditor-example-report.json ; \
	  rc=$$?; [ $$rc -le 1 ] || exit $$rc; echo "report: /tmp/auditor-example-report.json"

# Integration tests start DynamoDB Local; fetch it once (scripts/dynamodb-local).
dynamodb-local:
	@scripts/dynamodb-local >/dev/null

# Rule tests and the scrape test need prometheus and promtool (scripts/prometheus).
prometheus:
	@scripts/prometheus >/dev/null

test: setup dynamodb-local prometheus
	.venv/bin/python -m pytest -q

unit: setup
	.venv/bin/python -m pytest -q tests/unit tests/property

# The benchmark suite (benchmarks/README.md): every scenario beside its baseline.
# Full: ~10-15 min, into benchmarks/results/; quick: under a minute, benchmarks/results-quick/.
bench: setup dynamodb-local
	.venv/bin/python benchmarks/run.py --full

bench-quick: setup dynamodb-local
	.venv/bin/python benchmarks/run.py --quick

clean:
	rm -rf .venv build *.egg-info .pytest_cache .hypothesis
