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
#ifndef itkSUITSRegistrationMethod_hxx
#define itkSUITSRegistrationMethod_hxx

#include "itkSUITSRegistrationMethod.h"

#include "itkCastImageFilter.h"
#include "itkIdentityTransform.h"
#include "itkImageRegionIteratorWithIndex.h"
#include "itkLinearInterpolateImageFunction.h"
#include "itkMINDSSCImageFilter.h"
#include "itkNearestNeighborExtrapolateImageFunction.h"
#include "itkNearestNeighborInterpolateImageFunction.h"
#include "itkResampleImageFilter.h"

#include "vnl/algo/vnl_symmetric_eigensystem.h"

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <memory>
#include <numeric>
#include <sstream>

namespace itk
{

namespace SUITSDetail
{

/** The linear map of one axis of n samples to m samples over the same extent: a box filter of
 * width n / m (replicated edges) when downsampling, then linear interpolation at the positions
 * i (n - 1) / (m - 1) (corner-aligned). */
inline SUITSSparseAxisMatrix
ResizeMatrix(SizeValueType n, SizeValueType m)
{
  const SizeValueType factor = std::max<SizeValueType>(1, n / m);
  const long long     left = (static_cast<long long>(factor) - 1) / 2;
  const long long     right = static_cast<long long>(factor) - 1 - left;
  const long long     last = static_cast<long long>(n) - 1;
  // box row i: the mean of the samples i - left .. i + right, clamped to the axis
  const auto addBox = [&](std::map<SizeValueType, double> & row, long long i, double weight) {
    for (long long t = i - left; t <= i + right; ++t)
    {
      row[static_cast<SizeValueType>(std::min(std::max(t, 0LL), last))] += weight / static_cast<double>(factor);
    }
  };
  SUITSSparseAxisMatrix matrix;
  matrix.Rows = m;
  matrix.Columns = n;
  const double scale = m > 1 ? static_cast<double>(n - 1) / static_cast<double>(m - 1) : 0.0;
  for (SizeValueType i = 0; i < m; ++i)
  {
    std::map<SizeValueType, double> row;
    const double                    position = static_cast<double>(i) * scale;
    const long long base = n > 1 ? std::min(static_cast<long long>(std::floor(position)), last - 1) : 0;
    const double    fraction = position - static_cast<double>(base);
    addBox(row, base, 1.0 - fraction);
    if (n > 1 && fraction > 0.0)
    {
      addBox(row, base + 1, fraction);
    }
    for (const auto & entry : row)
    {
      matrix.Index.push_back(entry.first);
      matrix.Weight.push_back(entry.second);
    }
    matrix.Start.push_back(matrix.Index.size());
  }
  return matrix;
}

/** The separable [1, 2, 1] / 4 smoothing of one axis of n control points (replicated edges). */
inline SUITSSparseAxisMatrix
SmoothingMatrix(SizeValueType n)
{
  SUITSSparseAxisMatrix matrix;
  matrix.Rows = n;
  matrix.Columns = n;
  for (SizeValueType i = 0; i < n; ++i)
  {
    std::map<SizeValueType, double> row;
    row[i == 0 ? 0 : i - 1] += 0.25;
    row[i] += 0.5;
    row[i + 1 < n ? i + 1 : n - 1] += 0.25;
    for (const auto & entry : row)
    {
      matrix.Index.push_back(entry.first);
      matrix.Weight.push_back(entry.second);
    }
    matrix.Start.push_back(matrix.Index.size());
  }
  return matrix;
}

} // end namespace SUITSDetail


template <typename TFixedImage, typename TMovingImage>
SUITSRegistrationMethod<TFixedImage, TMovingImage>::SUITSRegistrationMethod()
{
  this->SetNumberOfRequiredOutputs(1);
  this->SetNthOutput(0, this->MakeOutput(0));
  this->GetTransformOutput()->Set(TransformType::New());
}


template <typename TFixedImage, typename TMovingImage>
DataObject::Pointer SUITSRegistrationMethod<TFixedImage, TMovingImage>::MakeOutput(DataObjectPointerArraySizeType)
{
  return DecoratedTransformType::New().GetPointer();
}


template <typename TFixedImage, typename TMovingImage>
auto
SUITSRegistrationMethod<TFixedImage, TMovingImage>::GetTransformOutput() -> DecoratedTransformType *
{
  return static_cast<DecoratedTransformType *>(this->ProcessObject::GetOutput(0));
}


template <typename TFixedImage, typename TMovingImage>
auto
SUITSRegistrationMethod<TFixedImage, TMovingImage>::GetTransform() const -> const TransformType *
{
  return static_cast<const DecoratedTransformType *>(this->ProcessObject::GetOutput(0))->Get();
}


template <typename TFixedImage, typename TMovingImage>
auto
SUITSRegistrationMethod<TFixedImage, TMovingImage>::GetModifiableTransform() -> TransformType *
{
  return this->GetTransformOutput()->GetModifiable();
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::SetGridSpacings(const std::vector<double> & spacings)
{
  if (spacings != m_GridSpacings)
  {
    m_GridSpacings = spacings;
    this->Modified();
  }
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::SetNumberOfIterations(const std::vector<unsigned int> & iterations)
{
  if (iterations != m_NumberOfIterations)
  {
    m_NumberOfIterations = iterations;
    this->Modified();
  }
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::SetSmoothnessWeights(const std::vector<double> & weights)
{
  if (weights != m_SmoothnessWeights)
  {
    m_SmoothnessWeights = weights;
    this->Modified();
  }
}


template <typename TFixedImage, typename TMovingImage>
auto
SUITSRegistrationMethod<TFixedImage, TMovingImage>::FixedGrid() const -> const ImageBase<ImageDimension> *
{
  if (this->GetFixedFeatures() != nullptr)
  {
    return this->GetFixedFeatures();
  }
  return this->GetFixedImage();
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::CheckInputs() const
{
  const auto sameGrid = [](const ImageBase<ImageDimension> * a, const ImageBase<ImageDimension> * b) {
    const double tolerance = 1e-6 * a->GetSpacing().GetVnlVector().max_value();
    return a->GetLargestPossibleRegion() == b->GetLargestPossibleRegion() &&
           (a->GetSpacing() - b->GetSpacing()).GetNorm() <= tolerance &&
           a->GetOrigin().EuclideanDistanceTo(b->GetOrigin()) <= tolerance &&
           (a->GetDirection().GetVnlMatrix() - b->GetDirection().GetVnlMatrix()).absolute_value_max() <= 1e-6;
  };
  const auto describe = [](const ImageBase<ImageDimension> * image) {
    std::ostringstream text;
    text << "size " << image->GetLargestPossibleRegion().GetSize() << ", origin " << image->GetOrigin()
         << ", spacing " << image->GetSpacing();
    return text.str();
  };
  const bool fixedFeatures = this->GetFixedFeatures() != nullptr;
  const bool movingFeatures = this->GetMovingFeatures() != nullptr;
  if (!fixedFeatures && this->GetFixedImage() == nullptr)
  {
    itkExceptionMacro("no fixed image: call SetFixedImage() (or SetFixedFeatures()) before Update()");
  }
  if (!movingFeatures && this->GetMovingImage() == nullptr)
  {
    itkExceptionMacro("no moving image: call SetMovingImage() (or SetMovingFeatures()) before Update()");
  }
  if (fixedFeatures != movingFeatures)
  {
    itkExceptionMacro("features were given for the " << (fixedFeatures ? "fixed" : "moving")
                                                     << " image only: set both SetFixedFeatures() and "
                                                        "SetMovingFeatures(), or neither (MIND-SSC of both images)");
  }
  if (fixedFeatures)
  {
    const unsigned int fixedChannels = this->GetFixedFeatures()->GetNumberOfComponentsPerPixel();
    const unsigned int movingChannels = this->GetMovingFeatures()->GetNumberOfComponentsPerPixel();
    if (fixedChannels != movingChannels || fixedChannels == 0)
    {
      itkExceptionMacro("the fixed features have " << fixedChannels << " channels but the moving features "
                                                   << movingChannels
                                                   << ": describe both images with the same feature filter");
    }
    if (this->GetFixedImage() != nullptr && !sameGrid(this->GetFixedImage(), this->GetFixedFeatures()))
    {
      itkExceptionMacro("size mismatch: the fixed features (" << describe(this->GetFixedFeatures())
                                                              << ") are not on the fixed image's grid ("
                                                              << describe(this->GetFixedImage()) << ")");
    }
  }
  const ImageBase<ImageDimension> * grid = this->FixedGrid();
  if (this->GetFixedMask() != nullptr && !sameGrid(grid, this->GetFixedMask()))
  {
    itkExceptionMacro("size mismatch: the fixed mask (" << describe(this->GetFixedMask())
                                                        << ") is not on the fixed grid (" << describe(grid)
                                                        << "): resample it onto the fixed image first");
  }
  const SizeValueType scales = m_GridSpacings.size();
  if (scales == 0)
  {
    itkExceptionMacro("no grid spacings: SetGridSpacings() needs at least one control spacing, e.g. {20, 10, 7}");
  }
  for (double spacing : m_GridSpacings)
  {
    if (!(spacing >= 2.0 && spacing <= 10000.0))
    {
      itkExceptionMacro("grid spacing " << spacing << " is out of range: control spacings are 2 to 10000 voxels");
    }
  }
  if (m_NumberOfIterations.size() != 1 && m_NumberOfIterations.size() != scales)
  {
    itkExceptionMacro("" << m_NumberOfIterations.size() << " iteration counts for " << scales
                         << " scales: give one per grid spacing, or one for all");
  }
  if (!m_SmoothnessWeights.empty() && m_SmoothnessWeights.size() != 1 && m_SmoothnessWeights.size() != scales)
  {
    itkExceptionMacro("" << m_SmoothnessWeights.size() << " smoothness weights for " << scales
                         << " scales: give one per grid spacing, one for all, or none (the defaults)");
  }
  for (double weight : m_SmoothnessWeights)
  {
    if (!(weight >= 0.0 && weight <= 1000.0))
    {
      itkExceptionMacro("smoothness weight " << weight << " is out of range [0, 1000]");
    }
  }
  if (!(m_LearningRate > 0.0 && m_LearningRate <= 0.5))
  {
    itkExceptionMacro("learning rate " << m_LearningRate << " is out of range (0, 0.5] (normalised grid units)");
  }
  if (!(m_Tolerance >= 0.0 && m_Tolerance <= 1.0))
  {
    itkExceptionMacro("tolerance " << m_Tolerance << " is out of range [0, 1]");
  }
  const auto   size = grid->GetLargestPossibleRegion().GetSize();
  const double coarsest = *std::max_element(m_GridSpacings.begin(), m_GridSpacings.end());
  const char * unit = m_GridSpacingsInPhysicalUnits ? " mm" : " voxels";
  double       smallest = std::numeric_limits<double>::max();
  bool         fits = true;
  for (unsigned int a = 0; a < ImageDimension; ++a)
  {
    // the extent in the unit of the grid spacings
    const double extent = static_cast<double>(size[a]) * (m_GridSpacingsInPhysicalUnits ? grid->GetSpacing()[a] : 1.0);
    smallest = std::min(smallest, extent);
    fits = fits && extent >= coarsest;
  }
  if (!fits)
  {
    itkExceptionMacro("the fixed image (size " << size << ", spacing " << grid->GetSpacing()
                                               << ") is smaller than the coarsest control-point spacing (" << coarsest
                                               << unit << ") along an axis: pass smaller grid spacings, e.g. "
                                               << "SetGridSpacings({" << std::max(2.0, std::floor(smallest / 2.0))
                                               << ", ...})");
  }
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::PrepareFeatures(ChannelImage & fixed, ChannelImage & moving) const
{
  using FeatureFilterType = MINDSSCImageFilter<InternalImageType, FeatureImageType>;
  const ImageBase<ImageDimension> * grid = this->FixedGrid();
  const auto                        toChannels = [](const FeatureImageType * image, unsigned int extra) {
    ChannelImage out;
    const auto   size = image->GetBufferedRegion().GetSize();
    for (unsigned int a = 0; a < ImageDimension; ++a)
    {
      out.Size[a] = size[a];
    }
    const unsigned int  channels = image->GetNumberOfComponentsPerPixel();
    const SizeValueType voxels = image->GetBufferedRegion().GetNumberOfPixels();
    out.Channels = channels + extra;
    out.Values.resize(voxels * out.Channels);
    const float * source = image->GetBufferPointer();
    for (SizeValueType v = 0; v < voxels; ++v)
    {
      std::copy(source + v * channels, source + (v + 1) * channels, out.Values.data() + v * out.Channels);
    }
    return out;
  };
  const auto describe = [this](auto * image) {
    auto features = FeatureFilterType::New();
    features->SetInput(image);
    features->SetNumberOfWorkUnits(this->GetNumberOfWorkUnits());
    features->Update();
    return typename FeatureImageType::Pointer(features->GetOutput());
  };
  using TransformBaseType = Transform<double, ImageDimension, ImageDimension>;
  typename TransformBaseType::ConstPointer transform = m_InitialTransform.GetPointer();
  if (transform.IsNull())
  {
    transform = IdentityTransform<double, ImageDimension>::New().GetPointer();
  }
  // the moving image (or features) on the fixed grid, linear inside, edge values outside
  const auto onFixedGrid = [&](auto * image) {
    using ImageType = std::remove_cv_t<std::remove_pointer_t<decltype(image)>>;
    auto resample = ResampleImageFilter<ImageType, ImageType, double>::New();
    resample->SetInput(image);
    resample->SetTransform(transform);
    resample->SetOutputParametersFromImage(grid);
    resample->SetInterpolator(LinearInterpolateImageFunction<ImageType, double>::New());
    resample->SetExtrapolator(NearestNeighborExtrapolateImageFunction<ImageType, double>::New());
    resample->SetNumberOfWorkUnits(this->GetNumberOfWorkUnits());
    resample->Update();
    return typename ImageType::Pointer(resample->GetOutput());
  };

  typename FeatureImageType::ConstPointer fixedFeatures = this->GetFixedFeatures();
  typename FeatureImageType::ConstPointer movingFeatures;
  const ImageBase<ImageDimension> *       movingGrid = nullptr;
  if (fixedFeatures.IsNotNull())
  {
    movingFeatures = onFixedGrid(this->GetMovingFeatures());
    movingGrid = this->GetMovingFeatures();
  }
  else
  {
    const auto cast = [](auto * image) {
      using ImageType = std::remove_cv_t<std::remove_pointer_t<decltype(image)>>;
      auto filter = CastImageFilter<ImageType, InternalImageType>::New();
      filter->SetInput(image);
      filter->Update();
      return typename InternalImageType::Pointer(filter->GetOutput());
    };
    fixedFeatures = describe(cast(this->GetFixedImage()).GetPointer());
    typename InternalImageType::Pointer movingOnFixed = onFixedGrid(cast(this->GetMovingImage()).GetPointer());
    movingFeatures = describe(movingOnFixed.GetPointer());
    movingGrid = this->GetMovingImage();
  }
  fixed = toChannels(fixedFeatures, 0);
  moving = toChannels(movingFeatures, 1);

  // the moving field of view on the fixed grid, eroded by the reach of the descriptor (a box of
  // FieldOfViewErosion voxels; the fixed image's edge counts as outside)
  using FieldOfViewType = Image<unsigned char, ImageDimension>;
  auto ones = FieldOfViewType::New();
  ones->SetRegions(movingGrid->GetLargestPossibleRegion());
  ones->SetOrigin(movingGrid->GetOrigin());
  ones->SetSpacing(movingGrid->GetSpacing());
  ones->SetDirection(movingGrid->GetDirection());
  ones->Allocate();
  ones->FillBuffer(1);
  auto covered = ResampleImageFilter<FieldOfViewType, FieldOfViewType, double>::New();
  covered->SetInput(ones);
  covered->SetTransform(transform);
  covered->SetOutputParametersFromImage(grid);
  covered->SetInterpolator(NearestNeighborInterpolateImageFunction<FieldOfViewType, double>::New());
  covered->SetDefaultPixelValue(0);
  covered->SetNumberOfWorkUnits(this->GetNumberOfWorkUnits());
  covered->Update();
  const SizeValueType        voxels = moving.Values.size() / moving.Channels;
  const unsigned char *      coveredValues = covered->GetOutput()->GetBufferPointer();
  std::vector<unsigned char> inside(coveredValues, coveredValues + voxels);
  std::vector<unsigned char> eroded(voxels);
  SizeValueType              stride = 1; // voxels between neighbours along axis a
  for (unsigned int a = 0; a < ImageDimension; ++a)
  {
    // box erosion along one axis: a voxel stays inside when the voxels within the erosion
    // radius along the axis all exist and are inside
    const long long n = static_cast<long long>(moving.Size[a]);
    const long long radius = FieldOfViewErosion;
    for (SizeValueType v = 0; v < voxels; ++v)
    {
      const long long i = static_cast<long long>((v / stride) % moving.Size[a]);
      bool            keep = i >= radius && i + radius < n;
      for (long long t = -radius; keep && t <= radius; ++t)
      {
        keep = inside[static_cast<SizeValueType>(static_cast<long long>(v) + t * static_cast<long long>(stride))] != 0;
      }
      eroded[v] = keep;
    }
    inside.swap(eroded);
    stride *= moving.Size[a];
  }
  for (SizeValueType v = 0; v < voxels; ++v)
  {
    moving.Values[v * moving.Channels + moving.Channels - 1] = inside[v] != 0 ? 1.0f : 0.0f;
  }
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::ProjectChannels(ChannelImage & fixed, ChannelImage & moving) const
{
  const unsigned int channels = fixed.Channels;
  const unsigned int count = m_NumberOfFeatureChannels;
  if (count == 0 || count >= channels)
  {
    return;
  }
  // a random subset of the voxels (every voxel of small images), the same for both images
  const SizeValueType        voxels = fixed.Values.size() / channels;
  const SizeValueType        subset = std::min(voxels, SizeValueType{ PrincipalComponentSamples });
  std::vector<SizeValueType> chosen(voxels);
  std::iota(chosen.begin(), chosen.end(), SizeValueType{ 0 });
  std::mt19937 generator(static_cast<std::mt19937::result_type>(m_RandomSeed));
  for (SizeValueType i = 0; i < subset; ++i)
  {
    std::swap(chosen[i], chosen[std::uniform_int_distribution<SizeValueType>(i, voxels - 1)(generator)]);
  }
  const std::array<ChannelImage *, 2> images{ &fixed, &moving };
  vnl_vector<double>                  mean(channels, 0.0);
  for (const ChannelImage * image : images)
  {
    for (SizeValueType i = 0; i < subset; ++i)
    {
      const float * row = image->Values.data() + chosen[i] * image->Channels;
      for (unsigned int c = 0; c < channels; ++c)
      {
        mean[c] += row[c];
      }
    }
  }
  mean /= static_cast<double>(2 * subset);
  vnl_matrix<double>  covariance(channels, channels, 0.0);
  std::vector<double> centred(channels);
  for (const ChannelImage * image : images)
  {
    for (SizeValueType i = 0; i < subset; ++i)
    {
      const float * row = image->Values.data() + chosen[i] * image->Channels;
      for (unsigned int c = 0; c < channels; ++c)
      {
        centred[c] = row[c] - mean[c];
      }
      for (unsigned int c = 0; c < channels; ++c)
      {
        double * line = covariance[c];
        for (unsigned int d = 0; d < channels; ++d)
        {
          line[d] += centred[c] * centred[d];
        }
      }
    }
  }
  covariance /= static_cast<double>(2 * subset);
  // eigenvalues in ascending order: the last columns are the leading components
  const vnl_symmetric_eigensystem<double> eigen(covariance);
  std::vector<float>                      basis(count * channels); // row k: component k
  std::vector<float>                      centre(channels);
  for (unsigned int c = 0; c < channels; ++c)
  {
    centre[c] = static_cast<float>(mean[c]);
    for (unsigned int k = 0; k < count; ++k)
    {
      basis[k * channels + c] = static_cast<float>(eigen.V(c, channels - 1 - k));
    }
  }
  for (ChannelImage * image : images)
  {
    const unsigned int extra = image->Channels - channels; // the moving field of view stays
    std::vector<float> projected(voxels * (count + extra));
    for (SizeValueType v = 0; v < voxels; ++v)
    {
      const float * row = image->Values.data() + v * image->Channels;
      float *       out = projected.data() + v * (count + extra);
      for (unsigned int c = 0; c < channels; ++c)
      {
        centred[c] = row[c] - centre[c];
      }
      for (unsigned int k = 0; k < count; ++k)
      {
        const float * component = basis.data() + k * channels;
        float         value = 0.0f;
        for (unsigned int c = 0; c < channels; ++c)
        {
          value += static_cast<float>(centred[c]) * component[c];
        }
        out[k] = value;
      }
      std::copy(row + channels, row + image->Channels, out + count);
    }
    image->Values.swap(projected);
    image->Channels = count + extra;
  }
}


template <typename TFixedImage, typename TMovingImage>
auto
SUITSRegistrationMethod<TFixedImage, TMovingImage>::FixedMaskImage() const -> ChannelImage
{
  ChannelImage        mask;
  const MaskImageType * image = this->GetFixedMask();
  if (image == nullptr)
  {
    return mask;
  }
  const auto size = image->GetBufferedRegion().GetSize();
  for (unsigned int a = 0; a < ImageDimension; ++a)
  {
    mask.Size[a] = size[a];
  }
  mask.Channels = 1;
  const SizeValueType voxels = image->GetBufferedRegion().GetNumberOfPixels();
  mask.Values.resize(voxels);
  const unsigned char * values = image->GetBufferPointer();
  bool                  any = false;
  for (SizeValueType v = 0; v < voxels; ++v)
  {
    mask.Values[v] = values[v] != 0 ? 1.0f : 0.0f;
    any = any || values[v] != 0;
  }
  if (!any)
  {
    itkExceptionMacro("the fixed mask is empty (no non-zero voxel): nothing to register");
  }
  return mask;
}


template <typename TFixedImage, typename TMovingImage>
auto
SUITSRegistrationMethod<TFixedImage, TMovingImage>::Resize(const ChannelImage & image, const SizeType & size) const
  -> ChannelImage
{
  ChannelImage current = image;
  for (unsigned int a = 0; a < ImageDimension; ++a)
  {
    if (current.Size[a] == size[a])
    {
      continue;
    }
    // channels are the fastest axis of the channel-last array
    std::array<SizeValueType, ImageDimension + 1> shape;
    shape[0] = current.Channels;
    for (unsigned int b = 0; b < ImageDimension; ++b)
    {
      shape[b + 1] = current.Size[b];
    }
    std::vector<float> resized;
    SUITSApplyAlongAxis<float, float, ImageDimension + 1>(
      current.Values, shape, 1, a + 1, SUITSDetail::ResizeMatrix(current.Size[a], size[a]), resized, this->GetMultiThreader());
    current.Values.swap(resized);
    current.Size[a] = size[a];
  }
  return current;
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::GenerateData()
{
  this->CheckInputs();
  MultiThreaderBase * threader = this->GetMultiThreader();
  threader->SetNumberOfWorkUnits(this->GetNumberOfWorkUnits());

  ChannelImage fixed;
  ChannelImage moving;
  this->PrepareFeatures(fixed, moving);
  this->ProjectChannels(fixed, moving);
  const ChannelImage mask = this->FixedMaskImage();
  const SizeType     size = fixed.Size;

  m_NumberOfIterationsRun.clear();
  m_CurrentMovement = std::numeric_limits<double>::quiet_NaN();
  std::unique_ptr<SUITSBSplineGrid<ImageDimension>> grid;
  std::vector<double>                               coefficients;
  for (unsigned int scale = 0; scale < m_GridSpacings.size(); ++scale)
  {
    typename SUITSBSplineGrid<ImageDimension>::SpacingType spacing;
    SizeType                                               level;
    for (unsigned int a = 0; a < ImageDimension; ++a)
    {
      spacing[a] = m_GridSpacings[scale] / (m_GridSpacingsInPhysicalUnits ? this->FixedGrid()->GetSpacing()[a] : 1.0);
      // about five working voxels per control spacing, never fewer than eight voxels per axis
      const SizeValueType factor = std::max<SizeValueType>(
        1, std::min<SizeValueType>(static_cast<SizeValueType>(spacing[a] / VoxelsPerSpacing), (size[a] - 1) / 7));
      level[a] = std::max<SizeValueType>(
        2, static_cast<SizeValueType>(std::nearbyint(static_cast<double>(size[a] - 1) / factor)) + 1);
    }
    auto finer = std::make_unique<SUITSBSplineGrid<ImageDimension>>(size, spacing, level);
    coefficients = grid ? grid->Refine(coefficients, *finer, threader)
                        : std::vector<double>(ImageDimension * finer->GetNumberOfControlPoints(), 0.0);
    grid = std::move(finer);
    this->RunScale(scale,
                   *grid,
                   Resize(fixed, level),
                   Resize(moving, level),
                   mask.Values.empty() ? mask : Resize(mask, level),
                   coefficients);
  }
  this->GetTransformOutput()->Set(this->MakeTransform(*grid, coefficients));
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::RunScale(unsigned int                             scale,
                                                             const SUITSBSplineGrid<ImageDimension> & grid,
                                                             const ChannelImage &                     fixed,
                                                             const ChannelImage &                     moving,
                                                             const ChannelImage &                     mask,
                                                             std::vector<double> & coefficients)
{
  MultiThreaderBase * threader = this->GetMultiThreader();
  const SizeType &    level = fixed.Size;
  const SizeType &    gridSize = grid.GetGridSize();
  const unsigned int  iterations =
    m_NumberOfIterations.size() == 1 ? m_NumberOfIterations[0] : m_NumberOfIterations[scale];
  const unsigned int scales = m_GridSpacings.size();
  double             smoothness = scale + 1 == scales ? FineSmoothness : CoarseSmoothness;
  if (!m_SmoothnessWeights.empty())
  {
    smoothness = m_SmoothnessWeights.size() == 1 ? m_SmoothnessWeights[0] : m_SmoothnessWeights[scale];
  }

  // where the fixed features are trusted
  SizeValueType voxels = 1;
  for (auto n : level)
  {
    voxels *= n;
  }
  std::vector<unsigned char> fixedValid(voxels, 1);
  if (!mask.Values.empty())
  {
    for (SizeValueType v = 0; v < voxels; ++v)
    {
      fixedValid[v] = mask.Values[v] > 0.5f;
    }
  }

  // confidence floor: a fraction of the mean squared central difference of the fixed features
  double        energy = 0.0;
  SizeValueType stride = 1; // voxels between neighbours along axis a
  for (unsigned int a = 0; a < ImageDimension; ++a)
  {
    const SizeValueType n = level[a];
    double              sum = 0.0;
    for (SizeValueType v = 0; v < voxels; ++v)
    {
      const SizeValueType i = (v / stride) % n;
      const float *       forward = fixed.Values.data() + (i + 1 < n ? v + stride : v) * fixed.Channels;
      const float *       backward = fixed.Values.data() + (i > 0 ? v - stride : v) * fixed.Channels;
      for (unsigned int c = 0; c < fixed.Channels; ++c)
      {
        const double difference = 0.5 * (static_cast<double>(forward[c]) - static_cast<double>(backward[c]));
        sum += difference * difference;
      }
    }
    energy += sum / static_cast<double>(voxels * fixed.Channels);
    stride *= n;
  }
  const float eps = static_cast<float>(ConfidenceFraction * energy + 1e-12);

  // Adam in voxels per component: the rate in normalised grid units times half the axis length
  std::array<double, ImageDimension> rate;
  for (unsigned int a = 0; a < ImageDimension; ++a)
  {
    rate[a] = m_LearningRate * (static_cast<double>(this->FixedGrid()->GetLargestPossibleRegion().GetSize()[a]) - 1.0) / 2.0;
  }
  const double        fullStep = *std::max_element(rate.begin(), rate.end());
  const SizeValueType points = grid.GetNumberOfControlPoints();
  std::vector<double> first(coefficients.size(), 0.0);
  std::vector<double> second(coefficients.size(), 0.0);
  // a level of more voxels than NumberOfSpatialSamples is thinned to random strided lattices; the
  // iterates then jitter about the optimum, so convergence is judged on, and the scale returns,
  // their running average (the newest iterate weighs 0.1)
  const SizeType      strides = this->SamplingStrides(level);
  const bool          sampled = std::any_of(strides.begin(), strides.end(), [](SizeValueType k) { return k > 1; });
  std::mt19937        generator(static_cast<std::mt19937::result_type>(m_RandomSeed + scale));
  std::vector<double> tracked = coefficients;
  std::vector<double> previous = coefficients;
  SizeType            offsets{};
  std::unique_ptr<SUITSBSplineGrid<ImageDimension>> lattice;
  std::vector<double> gradient;
  std::vector<double> smoothed;
  std::vector<double> deviation;
  std::vector<float>  displacement;
  std::vector<float>  step;
  std::array<SUITSSparseAxisMatrix, ImageDimension> smoothing;
  for (unsigned int a = 0; a < ImageDimension; ++a)
  {
    smoothing[a] = SUITSDetail::SmoothingMatrix(gridSize[a]);
  }
  const auto smooth = [&](const std::vector<double> & in, std::vector<double> & out) {
    std::vector<double> current = in;
    SizeType            shape = gridSize;
    for (unsigned int a = 0; a < ImageDimension; ++a)
    {
      SUITSApplyAlongAxis<double, double, ImageDimension>(current, shape, ImageDimension, a, smoothing[a], out, threader);
      current.swap(out);
    }
    out.swap(current);
  };

  m_CurrentScale = scale;
  m_CurrentMovement = std::numeric_limits<double>::quiet_NaN();
  unsigned int done = iterations;
  for (unsigned int iteration = 1; iteration <= iterations; ++iteration)
  {
    if (sampled)
    {
      for (unsigned int a = 0; a < ImageDimension; ++a)
      {
        offsets[a] = std::uniform_int_distribution<SizeValueType>(0, strides[a] - 1)(generator);
      }
      lattice = std::make_unique<SUITSBSplineGrid<ImageDimension>>(grid.Lattice(offsets, strides));
    }
    const SUITSBSplineGrid<ImageDimension> & samples = sampled ? *lattice : grid;
    samples.Dense(coefficients, displacement, threader);
    this->DescentStep(fixed, moving, fixedValid, eps, offsets, strides, samples.GetLevelSize(), displacement, step);
    samples.Adjoint(step, gradient, threader);
    const double toGradient = -1.0 / samples.GetSupport();
    for (auto & value : gradient)
    {
      value *= toGradient;
    }
    if (smoothness > 0.0)
    {
      // gradient of w / 2 ||c - S c||^2 with S treated as symmetric: w (d - S d), d = c - S c
      smooth(coefficients, smoothed);
      deviation.resize(coefficients.size());
      for (SizeValueType k = 0; k < coefficients.size(); ++k)
      {
        deviation[k] = coefficients[k] - smoothed[k];
      }
      smooth(deviation, smoothed);
      for (SizeValueType k = 0; k < coefficients.size(); ++k)
      {
        gradient[k] += smoothness * (deviation[k] - smoothed[k]);
      }
    }
    const double correction1 = 1.0 - std::pow(AdamBeta1, iteration);
    const double correction2 = 1.0 - std::pow(AdamBeta2, iteration);
    for (unsigned int a = 0; a < ImageDimension; ++a)
    {
      for (SizeValueType k = a * points; k < (a + 1) * points; ++k)
      {
        first[k] = AdamBeta1 * first[k] + (1.0 - AdamBeta1) * gradient[k];
        second[k] = AdamBeta2 * second[k] + (1.0 - AdamBeta2) * gradient[k] * gradient[k];
        coefficients[k] -= rate[a] / correction1 * first[k] / (std::sqrt(second[k] / correction2) + AdamEpsilon);
      }
    }
    if (sampled)
    {
      for (SizeValueType k = 0; k < coefficients.size(); ++k)
      {
        tracked[k] += Averaging * (coefficients[k] - tracked[k]);
      }
    }
    const std::vector<double> & judged = sampled ? tracked : coefficients;
    bool                        stopped = false;
    if (iteration % CheckEvery == 0)
    {
      double largest = 0.0;
      for (SizeValueType k = 0; k < coefficients.size(); ++k)
      {
        largest = std::max(largest, std::abs(judged[k] - previous[k]));
      }
      previous = judged;
      m_CurrentMovement = largest / (CheckEvery * fullStep);
      if (m_CurrentMovement < m_Tolerance)
      {
        stopped = true;
        done = iteration;
      }
    }
    m_CurrentIteration = iteration;
    this->InvokeEvent(IterationEvent());
    if (stopped)
    {
      break;
    }
  }
  if (sampled)
  {
    coefficients = tracked;
  }
  m_NumberOfIterationsRun.push_back(done);
}


template <typename TFixedImage, typename TMovingImage>
auto
SUITSRegistrationMethod<TFixedImage, TMovingImage>::SamplingStrides(const SizeType & level) const -> SizeType
{
  SizeType strides;
  strides.fill(1);
  if (m_NumberOfSpatialSamples == 0)
  {
    return strides;
  }
  const auto kept = [&](unsigned int a, SizeValueType stride) { return (level[a] + stride - 1) / stride; };
  const auto total = [&]() {
    SizeValueType count = 1;
    for (unsigned int a = 0; a < ImageDimension; ++a)
    {
      count *= kept(a, strides[a]);
    }
    return count;
  };
  while (total() > m_NumberOfSpatialSamples)
  {
    // thin the axis keeping the most voxels (the slowest-varying one on ties), keep four at least
    unsigned int axis = ImageDimension - 1;
    for (int a = static_cast<int>(ImageDimension) - 2; a >= 0; --a)
    {
      if (kept(a, strides[a]) > kept(axis, strides[axis]))
      {
        axis = a;
      }
    }
    if (kept(axis, strides[axis] + 1) < 4)
    {
      break;
    }
    ++strides[axis];
  }
  return strides;
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::DescentStep(const ChannelImage &               fixed,
                                                                const ChannelImage &               moving,
                                                                const std::vector<unsigned char> & fixedValid,
                                                                float                              eps,
                                                                const SizeType &                   offsets,
                                                                const SizeType &                   strides,
                                                                const SizeType &                   samples,
                                                                const std::vector<float> &         displacement,
                                                                std::vector<float> &               step)
{
  constexpr unsigned int       D = ImageDimension;
  constexpr unsigned int       Corners = 1u << D;
  MultiThreaderBase *          threader = this->GetMultiThreader();
  const SizeType &             level = fixed.Size;
  const unsigned int           channels = fixed.Channels;
  const unsigned int           movingChannels = moving.Channels; // the features, then the field of view
  const bool                   dense = samples == level;
  SizeValueType                voxels = 1;
  std::array<SizeValueType, D> levelStrides; // working voxels between neighbours along each axis
  std::array<float, D>         toFull;       // working voxels -> full-resolution voxels
  std::array<float, D>         toWorking;    // and back
  const auto                   imageSize = this->FixedGrid()->GetLargestPossibleRegion().GetSize();
  for (unsigned int a = 0; a < D; ++a)
  {
    levelStrides[a] = a == 0 ? 1 : levelStrides[a - 1] * level[a - 1];
    voxels *= samples[a];
    toFull[a] = level[a] > 1 ? static_cast<float>(imageSize[a] - 1) / static_cast<float>(level[a] - 1) : 1.0f;
    toWorking[a] = 1.0f / toFull[a];
  }
  const SizeValueType rows = voxels / samples[0];
  // the working-level index of the first sample of a row of samples
  const auto rowStart = [&](SizeValueType row, std::array<SizeValueType, D> & index) {
    SizeValueType rest = row;
    index[0] = offsets[0];
    for (unsigned int a = 1; a < D; ++a)
    {
      index[a] = offsets[a] + (rest % samples[a]) * strides[a];
      rest /= samples[a];
    }
  };
  const auto levelIndex = [&](const std::array<SizeValueType, D> & index) {
    SizeValueType v = 0;
    for (unsigned int a = 0; a < D; ++a)
    {
      v += index[a] * levelStrides[a];
    }
    return v;
  };

  // 1. the moving features and field of view at p + u(p), linear, clamped to the border; on a
  // lattice also the derivatives of the same interpolant (zero across the border)
  m_Warped.resize(voxels * movingChannels);
  m_WarpedGradient.resize(dense ? 0 : voxels * D * channels);
  threader->ParallelizeArray(
    0,
    rows,
    [&](SizeValueType row) {
      std::array<SizeValueType, D> index;
      rowStart(row, index);
      std::array<float, D> fraction;
      std::array<bool, D>  inside;
      for (SizeValueType x = 0; x < samples[0]; ++x, index[0] += strides[0])
      {
        const SizeValueType s = row * samples[0] + x;
        SizeValueType       origin = 0;
        for (unsigned int a = 0; a < D; ++a)
        {
          const float last = static_cast<float>(level[a] - 1);
          const float position = static_cast<float>(index[a]) + displacement[a * voxels + s] * toWorking[a];
          const float clamped = std::min(std::max(position, 0.0f), last);
          // clamped is not negative: truncation is the floor
          const float base = std::min(static_cast<float>(static_cast<SizeValueType>(clamped)), std::max(last - 1.0f, 0.0f));
          inside[a] = position >= 0.0f && position <= last;
          fraction[a] = clamped - base;
          origin += static_cast<SizeValueType>(base) * levelStrides[a];
        }
        // the corners of the cell: their values, and their weights in the interpolant and in
        // its derivative along each axis (the other axes' weights, -1 or +1 along the axis)
        std::array<const float *, Corners>                   corners;
        std::array<float, Corners>                           weight;
        std::array<std::array<float, Corners>, D>            slope;
        for (unsigned int corner = 0; corner < Corners; ++corner)
        {
          SizeValueType offset = origin;
          weight[corner] = 1.0f;
          for (unsigned int a = 0; a < D; ++a)
          {
            const bool high = (corner >> a) & 1u;
            offset += high && level[a] > 1 ? levelStrides[a] : 0;
            weight[corner] *= high ? fraction[a] : 1.0f - fraction[a];
            if (!dense)
            {
              slope[a][corner] = inside[a] ? (high ? 1.0f : -1.0f) : 0.0f;
              for (unsigned int b = 0; b < D; ++b)
              {
                if (b != a)
                {
                  slope[a][corner] *= (corner >> b) & 1u ? fraction[b] : 1.0f - fraction[b];
                }
              }
            }
          }
          corners[corner] = moving.Values.data() + offset * movingChannels;
        }
        float * out = m_Warped.data() + s * movingChannels;
        for (unsigned int c = 0; c < movingChannels; ++c)
        {
          float value = 0.0f;
          for (unsigned int corner = 0; corner < Corners; ++corner)
          {
            value += weight[corner] * corners[corner][c];
          }
          out[c] = value;
        }
        if (!dense)
        {
          float * gradient = m_WarpedGradient.data() + s * D * channels;
          for (unsigned int a = 0; a < D; ++a)
          {
            for (unsigned int c = 0; c < channels; ++c)
            {
              float value = 0.0f;
              for (unsigned int corner = 0; corner < Corners; ++corner)
              {
                value += slope[a][corner] * corners[corner][c];
              }
              gradient[a * channels + c] = value;
            }
          }
        }
      }
    },
    nullptr);

  // 2. eq. 3 per channel, mean over channels; derivatives: central differences of the warped
  // features on the whole level, the interpolant's on a lattice
  step.resize(D * voxels);
  const float meanFactor = 1.0f / static_cast<float>(channels);
  threader->ParallelizeArray(
    0,
    rows,
    [&](SizeValueType row) {
      std::array<SizeValueType, D> index;
      rowStart(row, index);
      std::array<const float *, D> forward;
      std::array<const float *, D> backward;
      std::array<float, D>         sum;
      for (SizeValueType x = 0; x < samples[0]; ++x, index[0] += strides[0])
      {
        const SizeValueType s = row * samples[0] + x;
        const SizeValueType v = levelIndex(index);
        const float *       m = m_Warped.data() + s * movingChannels;
        const float *       gradient = dense ? nullptr : m_WarpedGradient.data() + s * D * channels;
        sum.fill(0.0f);
        if (fixedValid[v] && m[movingChannels - 1] > 0.999f)
        {
          if (dense)
          {
            for (unsigned int a = 0; a < D; ++a)
            {
              forward[a] = index[a] + 1 < level[a] ? m + levelStrides[a] * movingChannels : m;
              backward[a] = index[a] > 0 ? m - levelStrides[a] * movingChannels : m;
            }
          }
          const float * f = fixed.Values.data() + v * channels;
          for (unsigned int c = 0; c < channels; ++c)
          {
            const float          difference = f[c] - m[c];
            float                denominator = difference * difference + eps;
            std::array<float, D> derivative;
            for (unsigned int a = 0; a < D; ++a)
            {
              derivative[a] = dense ? 0.5f * (forward[a][c] - backward[a][c]) : gradient[a * channels + c];
              denominator += derivative[a] * derivative[a];
            }
            const float ratio = difference / denominator;
            for (unsigned int a = 0; a < D; ++a)
            {
              sum[a] += ratio * derivative[a];
            }
          }
        }
        for (unsigned int a = 0; a < D; ++a)
        {
          step[a * voxels + s] = sum[a] * meanFactor * toFull[a];
        }
      }
    },
    nullptr);
}


template <typename TFixedImage, typename TMovingImage>
auto
SUITSRegistrationMethod<TFixedImage, TMovingImage>::MakeTransform(const SUITSBSplineGrid<ImageDimension> & grid,
                                                                  const std::vector<double> & coefficients) const ->
  typename TransformType::Pointer
{
  const ImageBase<ImageDimension> * reference = this->FixedGrid();
  const auto                        region = reference->GetLargestPossibleRegion();
  SizeType                          size;
  for (unsigned int a = 0; a < ImageDimension; ++a)
  {
    size[a] = region.GetSize()[a];
  }
  // the field at every fixed voxel, in voxels
  const SUITSBSplineGrid<ImageDimension> full(size, grid.GetSpacing(), size);
  std::vector<double>                    voxelField;
  full.Dense(coefficients, voxelField, this->GetMultiThreader());

  auto field = DisplacementFieldType::New();
  field->SetRegions(region);
  field->SetOrigin(reference->GetOrigin());
  field->SetSpacing(reference->GetSpacing());
  field->SetDirection(reference->GetDirection());
  field->Allocate();
  // index units -> millimetres: Direction diag(spacing)
  Matrix<double, ImageDimension, ImageDimension> toPhysical = reference->GetDirection();
  for (unsigned int i = 0; i < ImageDimension; ++i)
  {
    for (unsigned int j = 0; j < ImageDimension; ++j)
    {
      toPhysical(i, j) *= reference->GetSpacing()[j];
    }
  }
  const SizeValueType                                voxels = region.GetNumberOfPixels();
  const InitialTransformType *                       initial = m_InitialTransform.GetPointer();
  ImageRegionIteratorWithIndex<DisplacementFieldType> it(field, region);
  for (SizeValueType v = 0; !it.IsAtEnd(); ++it, ++v)
  {
    Vector<double, ImageDimension> u;
    for (unsigned int a = 0; a < ImageDimension; ++a)
    {
      u[a] = voxelField[a * voxels + v];
    }
    typename DisplacementFieldType::PixelType displacement = toPhysical * u;
    if (initial != nullptr)
    {
      typename TransformType::InputPointType point;
      field->TransformIndexToPhysicalPoint(it.GetIndex(), point);
      displacement = initial->TransformPoint(point + displacement) - point;
    }
    it.Set(displacement);
  }
  auto transform = TransformType::New();
  transform->SetDisplacementField(field);
  return transform;
}


template <typename TFixedImage, typename TMovingImage>
void
SUITSRegistrationMethod<TFixedImage, TMovingImage>::PrintSelf(std::ostream & os, Indent indent) const
{
  Superclass::PrintSelf(os, indent);
  const auto print = [&os](const auto & values) {
    for (const auto & value : values)
    {
      os << ' ' << value;
    }
    os << std::endl;
  };
  os << indent << "GridSpacings (" << (m_GridSpacingsInPhysicalUnits ? "mm" : "voxels") << "):";
  print(m_GridSpacings);
  os << indent << "NumberOfIterations:";
  print(m_NumberOfIterations);
  os << indent << "SmoothnessWeights:";
  if (m_SmoothnessWeights.empty())
  {
    os << " " << CoarseSmoothness << " (coarse), " << FineSmoothness << " (finest)" << std::endl;
  }
  else
  {
    print(m_SmoothnessWeights);
  }
  os << indent << "LearningRate (normalised grid units): " << m_LearningRate << std::endl;
  os << indent << "Tolerance: " << m_Tolerance << std::endl;
  os << indent << "NumberOfSpatialSamples: " << m_NumberOfSpatialSamples << std::endl;
  os << indent << "NumberOfFeatureChannels: " << m_NumberOfFeatureChannels << std::endl;
  os << indent << "RandomSeed: " << m_RandomSeed << std::endl;
  os << indent << "InitialTransform: " << (m_InitialTransform ? m_InitialTransform->GetNameOfClass() : "none")
     << std::endl;
  os << indent << "CurrentScale: " << m_CurrentScale << std::endl;
  os << indent << "CurrentIteration: " << m_CurrentIteration << std::endl;
  os << indent << "CurrentMovement: " << m_CurrentMovement << std::endl;
  os << indent << "NumberOfIterationsRun:";
  print(m_NumberOfIterationsRun);
}

} // end namespace itk

#endif
