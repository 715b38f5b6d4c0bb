"""Attacks on unlearned models: PRA, fine-tuning relearning, MRA, reconstruction."""
