"""The parts of scripts/bench_serve.py: config, servers, client, model and report."""
