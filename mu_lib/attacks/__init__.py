"""Attacks on unlearned models: PRA, fine-tuning relearning, k-NN recovery and linear probe
(``probe``), MRA, reconstruction."""
