/*=========================================================================
 *
 *  Copyright itk-suits contributors
 *
 *  Licensed under the Apache License, Version 2.0 (the "License");
 *  you may not use this file except in compliance with the License.
 *  You may obtain a copy of the License at
 *
 *         http://www.apache.org/licenses/LICENSE-2.0.txt
 *
 *  Unless required by applicable law or agreed to in writing, software
 *  distributed under the License is distributed on an "AS IS" BASIS,
 *  WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 *  See the License for the specific language governing permissions and
 *  limitations under the License.
 *
 *=========================================================================*/
#ifndef itkSUITSRegistrationMethod_h
#define itkSUITSRegistrationMethod_h

#include "itkDataObjectDecorator.h"
#include "itkDisplacementFieldTransform.h"
#include "itkImage.h"
#include "itkProcessObject.h"
#include "itkSUITSBSplineGrid.h"
#include "itkTransform.h"
#include "itkVectorImage.h"

#include <array>
#include <vector>

namespace itk
{

/** \class SUITSRegistrationMethod
 * \brief Multi-modal deformable registration by B-spline descent on features (SUITS).
 *
 * Blendowski and Heinrich, "Learning interpretable multi-modal features for alignment with
 * supervised iterative descent", MIDL 2019. The same algorithm and defaults as the Python
 * engine of itk_suits (`itk_suits.register` with features "mind" and the "native" working grid):
 *
 * - Features: the MIND-SSC descriptor (MINDSSCImageFilter) of the fixed image and of the moving
 *   image resampled onto the fixed grid through the initial transform (linear interpolation,
 *   edge values outside), or any feature images given with SetFixedFeatures() and
 *   SetMovingFeatures() (VectorImage, the same number of channels; the moving ones are
 *   resampled the same way). Features of more than NumberOfFeatureChannels (6) channels are
 *   projected on the pair's leading principal components.
 * - Scales, coarse to fine: a cubic B-spline control grid of the given spacing (fixed voxels
 *   or millimetres; default 20, 10, 7 voxels), control point k of an axis at voxel (k - 1) s, evaluated exactly on a
 *   working level of about five voxels per control spacing (box-filtered and linearly resampled
 *   features). Each scale starts from the least-squares refinement of the previous grid. A
 *   working level of more than NumberOfSpatialSamples (65536) voxels is thinned to a random
 *   strided lattice every iteration (derivatives of the linear interpolant there, convergence
 *   and result from the running average of the iterates).
 * - Descent step per working voxel and channel c (eq. 3): \f$\Delta_c = (F_c - M_c) \nabla M_c /
 *   ((M_c - F_c)^2 + |\nabla M_c|^2 + \epsilon)\f$ with \f$M\f$ the warped moving features,
 *   \f$\nabla\f$ central differences, the confidence floor \f$\epsilon\f$ = 0.1 times the mean
 *   squared gradient norm of the fixed features; the step is the mean over channels, zero
 *   outside the fixed mask and where the warped moving field of view (eroded by the three-voxel
 *   reach of MIND-SSC) is left.
 * - Grid Adam (betas 0.9, 0.999; eps 0.01 voxel) in normalised [-1, 1] grid units
 *   (LearningRate 0.005 moves a control point about 0.005 (N - 1) / 2 voxels along an axis of N
 *   voxels per iteration) on the gradient: the negated step pulled back through the B-spline
 *   adjoint and divided by one control point's support, plus the gradient of the smoothness
 *   penalty \f$w/2 \|c - Sc\|^2\f$, S a separable [1, 2, 1] / 4 smoothing over control points
 *   (w = 0.2 on the coarse scales, 0.4 on the finest). A fresh Adam per scale.
 * - Early stopping: a scale ends when the largest control-point movement over the last 10
 *   iterations falls below Tolerance (0.1) times 10 full Adam steps.
 *
 * The output is a DisplacementFieldTransform on the fixed image's grid (origin, spacing,
 * direction), in millimetres: a fixed point x maps to the moving point T(x). The voxel field u
 * of the descent becomes Direction diag(spacing) u; with an initial transform \f$T_0\f$ the field
 * holds \f$T_0(x + d(x)) - x\f$, the composition (the deformable part acts first). Outside the
 * fixed image's extent the transform is the identity.
 *
 * Events: StartEvent and EndEvent around Update(), IterationEvent after every iteration (read
 * GetCurrentScale(), GetCurrentIteration(), GetCurrentMovement() in the observer).
 *
 * The per-voxel work (warping, descent step, B-spline operators) is multithreaded with the
 * MultiThreaderBase of the process object (SetNumberOfWorkUnits(); ITK's default is one work
 * unit per core, and on a busy machine small images register faster with one). The result does
 * not depend on the number of work units. The random lattices and channel subsets are drawn
 * from RandomSeed with the C++ standard library, so they differ from the Python engine's draws.
 *
 * \tparam TFixedImage  scalar image, 2D or 3D.
 * \tparam TMovingImage scalar image of the same dimension.
 *
 * \exception ExceptionObject at Update() for missing or inconsistent inputs (see Update()).
 *
 * \ingroup SUITS
 */
template <typename TFixedImage, typename TMovingImage = TFixedImage>
class ITK_TEMPLATE_EXPORT SUITSRegistrationMethod : public ProcessObject
{
public:
  ITK_DISALLOW_COPY_AND_MOVE(SUITSRegistrationMethod);

  /** Standard class type aliases. */
  using Self = SUITSRegistrationMethod;
  using Superclass = ProcessObject;
  using Pointer = SmartPointer<Self>;
  using ConstPointer = SmartPointer<const Self>;

  /** Method for creation through the object factory. */
  itkNewMacro(Self);

  /** Run-time type information. */
  itkTypeMacro(SUITSRegistrationMethod, ProcessObject);

  static constexpr unsigned int ImageDimension = TFixedImage::ImageDimension;
  static_assert(ImageDimension == 2 || ImageDimension == 3, "SUITSRegistrationMethod registers 2D and 3D images");
  static_assert(static_cast<unsigned int>(TMovingImage::ImageDimension) == ImageDimension,
                "the fixed and the moving image must have the same dimension");

  using FixedImageType = TFixedImage;
  using MovingImageType = TMovingImage;
  /** Feature images: one float vector of channels per voxel (e.g. MINDSSCImageFilter's output). */
  using FeatureImageType = VectorImage<float, ImageDimension>;
  /** Fixed mask: the descent only uses its non-zero voxels; it must lie on the fixed grid. */
  using MaskImageType = Image<unsigned char, ImageDimension>;
  using InitialTransformType = Transform<double, ImageDimension, ImageDimension>;
  using TransformType = DisplacementFieldTransform<double, ImageDimension>;
  using DisplacementFieldType = typename TransformType::DisplacementFieldType;
  using DecoratedTransformType = DataObjectDecorator<TransformType>;

  /** The fixed image (its grid is the grid of the output field). Not needed when fixed
   * features are given. */
  itkSetInputMacro(FixedImage, FixedImageType);
  itkGetInputMacro(FixedImage, FixedImageType);

  /** The moving image. Not needed when moving features are given. */
  itkSetInputMacro(MovingImage, MovingImageType);
  itkGetInputMacro(MovingImage, MovingImageType);

  /** Fixed features, on the fixed image's grid when a fixed image is set too: used instead of
   * MIND-SSC of the fixed image. */
  itkSetInputMacro(FixedFeatures, FeatureImageType);
  itkGetInputMacro(FixedFeatures, FeatureImageType);

  /** Moving features, with as many channels as the fixed ones, on any grid of the moving space. */
  itkSetInputMacro(MovingFeatures, FeatureImageType);
  itkGetInputMacro(MovingFeatures, FeatureImageType);

  /** Optional fixed mask on the fixed grid. */
  itkSetInputMacro(FixedMask, MaskImageType);
  itkGetInputMacro(FixedMask, MaskImageType);

  /** Optional initial alignment, mapping fixed physical points to moving ones; it is composed
   * into the output transform. */
  itkSetConstObjectMacro(InitialTransform, InitialTransformType);
  itkGetConstObjectMacro(InitialTransform, InitialTransformType);

  /** Control-point spacing per scale, coarse to fine, in fixed voxels (or millimetres, see
   * GridSpacingsInPhysicalUnits), each at least 2 (default 20, 10, 7). The number of scales. */
  void
  SetGridSpacings(const std::vector<double> & spacings);
  itkGetConstReferenceMacro(GridSpacings, std::vector<double>);

  /** Whether the grid spacings are in millimetres (as elastix's FinalGridSpacingInPhysicalUnits)
   * instead of fixed voxels (default off): on anisotropic voxels the control spacing in voxels
   * then differs per axis. */
  itkSetMacro(GridSpacingsInPhysicalUnits, bool);
  itkGetConstMacro(GridSpacingsInPhysicalUnits, bool);
  itkBooleanMacro(GridSpacingsInPhysicalUnits);

  /** Maximum iterations per scale, or one value for every scale (default 300). */
  void
  SetNumberOfIterations(const std::vector<unsigned int> & iterations);
  itkGetConstReferenceMacro(NumberOfIterations, std::vector<unsigned int>);

  /** Smoothness weight per scale, or one value for every scale; empty (default): 0.2 on every
   * scale but the finest, 0.4 on the finest. */
  void
  SetSmoothnessWeights(const std::vector<double> & weights);
  itkGetConstReferenceMacro(SmoothnessWeights, std::vector<double>);

  /** Grid Adam step in normalised [-1, 1] grid units, in (0, 0.5] (default 0.005). */
  itkSetMacro(LearningRate, double);
  itkGetConstMacro(LearningRate, double);

  /** Early-stopping tolerance, a fraction of Adam's full step in [0, 1]; 0 runs every
   * iteration (default 0.1). */
  itkSetMacro(Tolerance, double);
  itkGetConstMacro(Tolerance, double);

  /** Largest number of working voxels the descent step is computed at per iteration; a larger
   * working level is thinned to a random strided lattice drawn anew every iteration, and the
   * scale's convergence is judged on the running average of its iterates. 0: every voxel
   * (default 65536). */
  itkSetMacro(NumberOfSpatialSamples, SizeValueType);
  itkGetConstMacro(NumberOfSpatialSamples, SizeValueType);

  /** Feature channels kept: richer features are projected on the leading principal components
   * of the pair (estimated on up to 65536 random voxels of each image). 0: all (default 6, so
   * 3D MIND-SSC's 12 channels become 6). */
  itkSetMacro(NumberOfFeatureChannels, unsigned int);
  itkGetConstMacro(NumberOfFeatureChannels, unsigned int);

  /** Seed of the random lattices and of the voxels of the principal components (default 0). */
  itkSetMacro(RandomSeed, unsigned int);
  itkGetConstMacro(RandomSeed, unsigned int);

  /** Index (from 0, coarse to fine) of the scale being descended, for observers. */
  itkGetConstMacro(CurrentScale, unsigned int);
  /** Iteration (from 1) of the current scale just finished, for observers. */
  itkGetConstMacro(CurrentIteration, unsigned int);
  /** The last convergence measure of the current scale: the largest control-point movement per
   * iteration over the last 10 iterations as a fraction of Adam's full step (NaN before the
   * first check). */
  itkGetConstMacro(CurrentMovement, double);
  /** Iterations run per scale by the last Update(). */
  itkGetConstReferenceMacro(NumberOfIterationsRun, std::vector<unsigned int>);

  /** The fixed-to-moving transform of the last Update() (physical space, millimetres). */
  const TransformType *
  GetTransform() const;
  TransformType *
  GetModifiableTransform();
  DecoratedTransformType *
  GetTransformOutput();

  /** The output is a decorated transform. */
  using Superclass::MakeOutput;
  DataObjectPointer MakeOutput(DataObjectPointerArraySizeType) override;

  /** Run the registration.
   * \exception ExceptionObject when neither the fixed image nor fixed features (or neither the
   * moving image nor moving features) are set, when only one side is given as features, when
   * the features differ in channel count or the fixed features lie on another grid than the
   * fixed image, when the mask is not on the fixed grid, when the fixed image is smaller than
   * the coarsest control spacing along an axis, or for schedule values out of range. */
  using Superclass::Update;

protected:
  SUITSRegistrationMethod();
  ~SUITSRegistrationMethod() override = default;

  void
  PrintSelf(std::ostream & os, Indent indent) const override;

  void
  GenerateData() override;

private:
  using SizeType = std::array<SizeValueType, ImageDimension>;
  using InternalImageType = Image<float, ImageDimension>;

  /** A multi-channel image as a channel-last array (ITK index order, x fastest). */
  struct ChannelImage
  {
    SizeType           Size{};
    unsigned int       Channels{ 0 };
    std::vector<float> Values;
  };

  /** Throw ExceptionObject for missing or inconsistent inputs or parameters. */
  void
  CheckInputs() const;

  /** The fixed and moving features on the fixed grid, and the moving field of view (one channel,
   * appended to the moving features as their last channel). */
  void
  PrepareFeatures(ChannelImage & fixed, ChannelImage & moving) const;

  /** Project the features of both images on the pair's NumberOfFeatureChannels leading
   * principal components (centred on the pair's mean feature); the moving field of view stays
   * the last moving channel. Nothing changes for features of at most that many channels. */
  void
  ProjectChannels(ChannelImage & fixed, ChannelImage & moving) const;

  /** The fixed mask on the fixed grid as 0/1 values (empty without a mask). */
  ChannelImage
  FixedMaskImage() const;

  /** \p image resampled to \p size over the same extent (box filter, then linear, per axis). */
  ChannelImage
  Resize(const ChannelImage & image, const SizeType & size) const;

  /** Run one scale from \p coefficients (updated in place). */
  void
  RunScale(unsigned int                      scale,
           const SUITSBSplineGrid<ImageDimension> & grid,
           const ChannelImage &              fixed,
           const ChannelImage &              moving,
           const ChannelImage &              mask,
           std::vector<double> &             coefficients);

  /** Per-axis strides of the lattices that leave at most NumberOfSpatialSamples voxels of a
   * working level of size \p level (all 1: every voxel). */
  SizeType
  SamplingStrides(const SizeType & level) const;

  /** Descent step in full-resolution voxels (VDimension blocks of \p samples voxels) at the
   * working voxels offsets + j strides (all of them when \p samples is the level size),
   * given the displacement there (same layout). */
  void
  DescentStep(const ChannelImage &               fixed,
              const ChannelImage &               moving,
              const std::vector<unsigned char> & fixedValid,
              float                              eps,
              const SizeType &                   offsets,
              const SizeType &                   strides,
              const SizeType &                   samples,
              const std::vector<float> &         displacement,
              std::vector<float> &               step);

  /** The output transform from the final coefficients. */
  typename TransformType::Pointer
  MakeTransform(const SUITSBSplineGrid<ImageDimension> & grid, const std::vector<double> & coefficients) const;

  /** The fixed grid: the fixed features' when given, else the fixed image's. */
  const ImageBase<ImageDimension> *
  FixedGrid() const;

  /** Fixed settings of the descent (the Python engine's). */
  static constexpr double       AdamBeta1 = 0.9;
  static constexpr double       AdamBeta2 = 0.999;
  static constexpr double       AdamEpsilon = 0.01;     // voxels of mean descent step
  static constexpr double       ConfidenceFraction = 0.1;
  static constexpr double       CoarseSmoothness = 0.2;
  static constexpr double       FineSmoothness = 0.4;
  static constexpr unsigned int CheckEvery = 10;        // iterations between convergence checks
  static constexpr unsigned int FieldOfViewErosion = 3; // voxels: the reach of MIND-SSC
  static constexpr double       VoxelsPerSpacing = 5.0; // working voxels per control spacing
  static constexpr double       Averaging = 0.1;        // weight of the newest iterate on lattices
  static constexpr SizeValueType PrincipalComponentSamples = 65536; // voxels per image

  std::vector<double>       m_GridSpacings{ 20.0, 10.0, 7.0 };
  bool                      m_GridSpacingsInPhysicalUnits{ false };
  std::vector<unsigned int> m_NumberOfIterations{ 300 };
  std::vector<double>       m_SmoothnessWeights;
  double                    m_LearningRate{ 0.005 };
  double                    m_Tolerance{ 0.1 };

  typename InitialTransformType::ConstPointer m_InitialTransform;

  SizeValueType             m_NumberOfSpatialSamples{ 65536 };
  unsigned int              m_NumberOfFeatureChannels{ 6 };
  unsigned int              m_RandomSeed{ 0 };

  /** Work buffers of DescentStep(): the warped moving channels, and their derivatives on lattices. */
  std::vector<float> m_Warped;
  std::vector<float> m_WarpedGradient;

  unsigned int              m_CurrentScale{ 0 };
  unsigned int              m_CurrentIteration{ 0 };
  double                    m_CurrentMovement{ 0.0 };
  std::vector<unsigned int> m_NumberOfIterationsRun;
};

} // end namespace itk

#ifndef ITK_MANUAL_INSTANTIATION
#  include "itkSUITSRegistrationMethod.hxx"
#endif

#endif
