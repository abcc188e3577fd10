"""Networks and their building blocks: anchors and box coding, the CMB detector
(3-D U-Net + RPN, optional Feature Fusion Module), prototype learning."""
