"""Batch jobs: OpenAI batch-format JSONL files in S3, run through the same pipeline."""
