"""Training engine: the LightningModule and the run driver."""
