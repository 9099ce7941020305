"""Stage trainers: configure TRL's SFTTrainer and GRPOTrainer for SRPO, nothing more."""
