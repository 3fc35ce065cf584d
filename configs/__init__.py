"""The YAML configs of deepul-lightning, installed as the package ``deepul_configs`` (package data:
``deepul-train fit --config hw1/warmup.yaml`` finds them from any folder)."""
