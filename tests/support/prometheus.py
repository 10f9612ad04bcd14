"""Metrics text as vLLM and TGI serve it on /metrics, for the health probe's tests."""

VLLM_METRICS = """\
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B"} 3.0
vllm:num_requests_waiting{model_name="lora {a}"} 2.0
vllm:num_requests_running{model_name="meta-llama/Llama-3.1-8B"} 7.0
tgi_queue_size 11
"""
