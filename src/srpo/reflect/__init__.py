"""Stage 1 data: policy attempts, teacher reflections, filtering into an SFT dataset (SPEC §2, §3)."""
