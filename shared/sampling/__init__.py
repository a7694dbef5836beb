"""Sampling techniques: Monte Carlo (simple random, stratified, importance), categorical, interpolation, diffusion."""
