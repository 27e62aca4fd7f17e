# The ITK module's name and dependencies. ITK's module machinery reads this file when the module
# is built inside an ITK source tree or against an ITK build tree; the standalone build against an
# installed ITK (CMakeLists.txt) reads the same lists.
itk_module(SUITS
  DEPENDS
    ITKCommon
    ITKImageFilterBase
    ITKImageGrid
    ITKImageFunction
    ITKTransform
    ITKDisplacementField
  TEST_DEPENDS
    ITKTestKernel
    ITKIOImageBase
    ITKIONRRD
    ITKIOMeta
    ITKIOPNG
  DESCRIPTION
    "SUITS multi-modal deformable registration (B-spline supervised iterative descent) on MIND-SSC or learned features: itk::MINDSSCImageFilter and itk::SUITSRegistrationMethod"
  EXCLUDE_FROM_DEFAULT
)
