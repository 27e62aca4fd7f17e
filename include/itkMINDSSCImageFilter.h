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
#ifndef itkMINDSSCImageFilter_h
#define itkMINDSSCImageFilter_h

#include "itkImageToImageFilter.h"
#include "itkVectorImage.h"

#include <type_traits>
#include <utility>
#include <vector>

namespace itk
{

/** \class MINDSSCImageFilter
 * \brief MIND-SSC descriptor: the modality independent neighbourhood descriptor, self-similarity context.
 *
 * Heinrich et al., "Towards realtime multimodal fusion for image-guided interventions using
 * self-similarity contexts", MICCAI 2013. Each voxel is described by how similar pairs of
 * patches around it are to each other, so the descriptor depends on local structure and not on
 * how a modality maps tissue to intensity. The definition, parameters and channel order are
 * those of the Python function `itk_suits.features.mind_ssc` (the `"mind"` features of the
 * itk_suits registration), and the test suite checks that both agree within 1e-4:
 *
 * - intensities are divided by their range (maximum minus minimum; 1 for a constant image);
 * - for each pair \f$(p, q)\f$ of unit neighbour offsets, scaled by the Dilation \f$d\f$,
 *   \f$D_{pq}(x) = \sum_{y \in B_r(x)} (I(y + d p) - I(y + d q))^2\f$, where \f$B_r(x)\f$ is the
 *   box of \f$(2r + 1)^n\f$ voxels around \f$x\f$ (r = Radius) and \f$I\f$ outside the image
 *   repeats its edge voxels;
 * - the variance \f$V(x)\f$ is the mean of \f$D\f$ over the channels minus its minimum
 *   \f$D_{\min}(x)\f$, clamped to \f$[10^{-3} \bar V, 10^{3} \bar V]\f$ with \f$\bar V\f$ its mean
 *   over the image;
 * - channel \f$c\f$ is \f$\exp(-\min(80, (D_c - D_{\min}) / (V + 10^{-12})))\f$, so values lie in
 *   (0, 1] and the channel holding the minimum is exactly 1 (a constant image gives all ones).
 *
 * The neighbours are the unit offsets along each image axis. In 2D all 6 pairs of the 4
 * neighbours are used (4 diagonal pairs at distance \f$\sqrt 2\f$, 2 opposite pairs at distance 2);
 * in 3D the 12 pairs of neighbours on different axes (distance \f$\sqrt 2\f$). The channels
 * follow the pairs \f$(n_i, n_j)\f$, \f$i < j\f$, of the neighbours
 * \f$n = (+z, -z, +y, -y, +x, -x)\f$ (3D) or \f$(+y, -y, +x, -x)\f$ (2D), in order of \f$i\f$, then
 * \f$j\f$; GetNeighbourPairs() lists them as ITK offsets. Distances are in voxels: the
 * descriptor ignores the spacing, as the Python one does.
 *
 * The output is a VectorImage with 6 (2D) or 12 (3D) components per pixel on the input's grid
 * (same largest possible region, origin, spacing and direction). The whole input is read and
 * the whole output written (the variance is normalised by its mean over the image), so the filter
 * does not stream. Computation is in single precision, multithreaded with the filter's
 * MultiThreaderBase (SetNumberOfWorkUnits()); the result does not depend on the thread count
 * beyond the rounding of the image mean of the variance.
 *
 * \tparam TInputImage  Scalar image of real or integer pixels, 2D or 3D.
 * \tparam TOutputImage VectorImage of float or double components with the input's dimension.
 *
 * \exception ExceptionObject at Update() when the input holds NaN or infinite values, has no
 * pixels, or the Dilation is 0.
 *
 * \ingroup SUITS
 */
template <typename TInputImage, typename TOutputImage = VectorImage<float, TInputImage::ImageDimension>>
class ITK_TEMPLATE_EXPORT MINDSSCImageFilter : public ImageToImageFilter<TInputImage, TOutputImage>
{
public:
  ITK_DISALLOW_COPY_AND_MOVE(MINDSSCImageFilter);

  /** Standard class type aliases. */
  using Self = MINDSSCImageFilter;
  using Superclass = ImageToImageFilter<TInputImage, TOutputImage>;
  using Pointer = SmartPointer<Self>;
  using ConstPointer = SmartPointer<const Self>;

  /** Method for creation through the object factory. */
  itkNewMacro(Self);

  /** Run-time type information. */
  itkTypeMacro(MINDSSCImageFilter, ImageToImageFilter);

  static constexpr unsigned int ImageDimension = TInputImage::ImageDimension;
  /** Number of descriptor channels (output components): 6 in 2D, 12 in 3D. */
  static constexpr unsigned int NumberOfChannels = ImageDimension == 2 ? 6 : 12;

  using InputImageType = TInputImage;
  using InputPixelType = typename InputImageType::PixelType;
  using OutputImageType = TOutputImage;
  using OutputComponentType = typename OutputImageType::InternalPixelType;
  using RegionType = typename InputImageType::RegionType;
  using IndexType = typename InputImageType::IndexType;
  using SizeType = typename InputImageType::SizeType;
  using OffsetType = typename InputImageType::OffsetType;
  /** Neighbour pair \f$(p, q)\f$ of one channel: unit offsets in ITK index order (x, y[, z]). */
  using NeighbourPairType = std::pair<OffsetType, OffsetType>;

  static_assert(ImageDimension == 2 || ImageDimension == 3, "MINDSSCImageFilter supports 2D and 3D images");
  static_assert(static_cast<unsigned int>(OutputImageType::ImageDimension) == ImageDimension,
                "the output image must have the input's dimension");
  static_assert(std::is_same<OutputImageType, VectorImage<OutputComponentType, ImageDimension>>::value,
                "the output image must be a VectorImage");
  static_assert(std::is_floating_point<OutputComponentType>::value,
                "the output components must be float or double");

  /** Half width of the patch (box) over which squared differences are summed, in voxels
   * (default 1: 3x3 or 3x3x3 patches; 0: single voxels). */
  itkSetMacro(Radius, unsigned int);
  itkGetConstMacro(Radius, unsigned int);

  /** Distance of the neighbour offsets from the centre voxel, in voxels, at least 1 (default 2). */
  itkSetMacro(Dilation, unsigned int);
  itkGetConstMacro(Dilation, unsigned int);

  /** The neighbour pairs \f$(p, q)\f$ in channel order (NumberOfChannels of them), as unit
   * offsets in ITK index order; the filter scales them by the Dilation. */
  static std::vector<NeighbourPairType>
  GetNeighbourPairs();

protected:
  MINDSSCImageFilter();
  ~MINDSSCImageFilter() override = default;

  void
  PrintSelf(std::ostream & os, Indent indent) const override;

  /** Dilation at least 1 (an input is required by the superclass). */
  void
  VerifyPreconditions() ITKv5_CONST override;

  /** The output has NumberOfChannels components per pixel. */
  void
  GenerateOutputInformation() override;

  /** The whole input is needed (range normalisation, variance mean over the image). */
  void
  GenerateInputRequestedRegion() override;

  /** The whole output is produced. */
  void
  EnlargeOutputRequestedRegion(DataObject * output) override;

  void
  GenerateData() override;

private:
  /** Single precision working image on a grid that may extend beyond the input (negative start index). */
  using RealImageType = Image<float, ImageDimension>;
  using RealImagePointer = typename RealImageType::Pointer;

  /** A new buffer over `region`. */
  static RealImagePointer
  MakeRealImage(const RegionType & region);

  /** Run `lineFunction(lineStart, length)` over the rows (lines along index axis 0) of `region`,
   * in parallel; `progress` receives the progress (may be nullptr). */
  template <typename TLineFunction>
  void
  ForEachLine(const RegionType & region, TLineFunction lineFunction, ProcessObject * progress);

  /** Sum over the 2 Radius + 1 voxels centred on each voxel along index axis `axis` of
   * `value(line, i)`, the value at position i of a line of `input` (defined over `valueRegion`).
   * `output` is given `valueRegion` shrunk by the Radius on both sides of that axis. */
  template <typename TValue>
  void
  BoxSumAlongAxis(const RealImageType * input,
                  const RegionType &    valueRegion,
                  TValue                value,
                  unsigned int          axis,
                  RealImageType *       output,
                  ProcessObject *       progress);

  unsigned int m_Radius{ 1 };
  unsigned int m_Dilation{ 2 };
};
} // namespace itk

#ifndef ITK_MANUAL_INSTANTIATION
#  include "itkMINDSSCImageFilter.hxx"
#endif

#endif // itkMINDSSCImageFilter_h
