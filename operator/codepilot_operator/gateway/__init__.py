"""The OpenAI-compatible gateway in front of a CodePilot's Triton (``codepilot gateway``).

A thin translator on aiohttp: OpenAI completions (with ``suffix`` for fill-in-the-middle), chat, and
server-sent-event streaming in; Triton's generate endpoints with the text contract (api/endpoint.py)
out. It adds what a hosted code API has and Triton has not: per-team keys from Kubernetes Secrets,
requests- and tokens-per-minute limits per key, a queue in front of each model, usage in every answer
and per-team Prometheus metrics. Nothing imports this package except the command line.
"""
