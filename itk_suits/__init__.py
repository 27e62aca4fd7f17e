"""itk-suits: SUITS multi-modal deformable registration for ITK and SimpleITK."""

__version__ = "0.1.0"
