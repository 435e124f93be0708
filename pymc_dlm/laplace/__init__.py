"""Non-Gaussian observations: the posterior mode and the Laplace log-likelihood."""
