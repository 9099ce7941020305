"""Stage 1 data: policy attempts, teacher reflections, filtering into an SFT dataset (docs/method.md#prompts, #reflection-data)."""
