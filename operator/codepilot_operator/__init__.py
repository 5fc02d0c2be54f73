"""CodePilot: a Kubernetes operator that serves private code-assistant LLMs on Triton."""

__version__ = "0.1.0"
