"""Evaluation: the hand-written gold set (``gold.jsonl``) and the harness that scores retrieval."""
