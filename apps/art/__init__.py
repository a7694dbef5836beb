"""apps/art: few-shot art synthesis (diffusion, GAN, VAE) with galleries, interpolation and honest metrics."""
