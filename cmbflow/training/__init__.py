"""Training of the detector: targets for the RPN, the loss, patch sampling, the loop."""
