"""Floor 3: federated training, experiments and the `secagg` command line."""
