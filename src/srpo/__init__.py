"""srpo: reflection-aware reinforcement learning (SRPO) for multimodal LLMs, built on TRL."""

__version__ = "0.1.0"
