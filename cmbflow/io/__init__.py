"""Reading and checking the inputs: NIfTI volumes, BIDS discovery, phase units, annotations."""
