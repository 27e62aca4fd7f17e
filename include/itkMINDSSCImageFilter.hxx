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
#ifndef itkMINDSSCImageFilter_hxx
#define itkMINDSSCImageFilter_hxx

#include "itkMINDSSCImageFilter.h"
#include "itkProgressTransformer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

namespace itk
{

namespace MINDSSCDetail
{
// The variance is clamped to this range around its image mean, so that flat regions and single
// strong edges do not dominate the descriptor.
constexpr float VarianceClampLow = 1e-3f;
constexpr float VarianceClampHigh = 1e3f;
// Added to the variance so that an image without any structure has a finite descriptor (all
// ones); in units of the squared intensity range of the image.
constexpr float VarianceEpsilon = 1e-12f;
// exp(-80) is still a normal float: the exponent is capped there so that no value underflows.
constexpr float MaximumExponent = 80.0f;

/** exp(x) for x in [-MaximumExponent, 0], within 2 units in the last place of the float result.
 * Plain arithmetic (Cody-Waite reduction to r = x - n ln 2, |r| <= ln 2 / 2, a degree 6
 * polynomial for exp(r), times 2^n), so that loops over channels vectorise, which std::exp does
 * not. */
inline float
ExpOfNonPositive(float x)
{
  constexpr float Log2e = 1.44269504088896341f;
  constexpr float Ln2High = 0.693359375f; // ln 2 = Ln2High + Ln2Low, Ln2High exact in 10 bits
  constexpr float Ln2Low = -2.12194440e-4f;
  constexpr float RoundingShift = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
  const float     shifted = x * Log2e + RoundingShift;
  const float     n = shifted - RoundingShift;
  const float     r = (x - n * Ln2High) - n * Ln2Low;
  float           p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float expR = p * r * r + r + 1.0f;
  // 2^n as a float: n >= -116 here, so the biased exponent n + 127 stays in the normal range.
  const auto    biased = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float         scale;
  std::memcpy(&scale, &biased, sizeof(scale));
  return expR * scale;
}
} // namespace MINDSSCDetail

template <typename TInputImage, typename TOutputImage>
MINDSSCImageFilter<TInputImage, TOutputImage>::MINDSSCImageFilter() = default;

template <typename TInputImage, typename TOutputImage>
auto
MINDSSCImageFilter<TInputImage, TOutputImage>::GetNeighbourPairs() -> std::vector<NeighbourPairType>
{
  // Neighbours +e_a, -e_a for the array axes a in the Python package's order (z, y, x in 3D;
  // y, x in 2D), that is ITK index axis ImageDimension - 1 - a.
  std::vector<OffsetType> neighbours;
  for (unsigned int arrayAxis = 0; arrayAxis < ImageDimension; ++arrayAxis)
  {
    for (const OffsetValueType sign : { 1, -1 })
    {
      OffsetType neighbour;
      neighbour.Fill(0);
      neighbour[ImageDimension - 1 - arrayAxis] = sign;
      neighbours.push_back(neighbour);
    }
  }
  std::vector<NeighbourPairType> pairs;
  for (size_t i = 0; i < neighbours.size(); ++i)
  {
    for (size_t j = i + 1; j < neighbours.size(); ++j)
    {
      // Neighbours 2k and 2k + 1 lie on the same axis: 3D leaves those pairs out.
      if (ImageDimension == 2 || i / 2 != j / 2)
      {
        pairs.emplace_back(neighbours[i], neighbours[j]);
      }
    }
  }
  return pairs;
}

template <typename TInputImage, typename TOutputImage>
void
MINDSSCImageFilter<TInputImage, TOutputImage>::VerifyPreconditions() ITKv5_CONST
{
  Superclass::VerifyPreconditions();
  if (m_Dilation < 1)
  {
    itkExceptionMacro("Dilation must be at least 1 voxel (the distance of the neighbours from the centre), got "
                      << m_Dilation);
  }
}

template <typename TInputImage, typename TOutputImage>
void
MINDSSCImageFilter<TInputImage, TOutputImage>::GenerateOutputInformation()
{
  Superclass::GenerateOutputInformation();
  this->GetOutput()->SetNumberOfComponentsPerPixel(NumberOfChannels);
}

template <typename TInputImage, typename TOutputImage>
void
MINDSSCImageFilter<TInputImage, TOutputImage>::GenerateInputRequestedRegion()
{
  Superclass::GenerateInputRequestedRegion();
  if (auto * input = const_cast<InputImageType *>(this->GetInput()))
  {
    input->SetRequestedRegionToLargestPossibleRegion();
  }
}

template <typename TInputImage, typename TOutputImage>
void
MINDSSCImageFilter<TInputImage, TOutputImage>::EnlargeOutputRequestedRegion(DataObject * output)
{
  Superclass::EnlargeOutputRequestedRegion(output);
  output->SetRequestedRegionToLargestPossibleRegion();
}

template <typename TInputImage, typename TOutputImage>
auto
MINDSSCImageFilter<TInputImage, TOutputImage>::MakeRealImage(const RegionType & region) -> RealImagePointer
{
  auto image = RealImageType::New();
  image->SetRegions(region);
  image->Allocate();
  return image;
}

template <typename TInputImage, typename TOutputImage>
template <typename TLineFunction>
void
MINDSSCImageFilter<TInputImage, TOutputImage>::ForEachLine(const RegionType &  region,
                                                           TLineFunction       lineFunction,
                                                           ProcessObject *     progress)
{
  this->GetMultiThreader()->template ParallelizeImageRegionRestrictDirection<ImageDimension>(
    0,
    region,
    [&lineFunction](const RegionType & piece) {
      const SizeValueType length = piece.GetSize(0);
      if (length == 0)
      {
        return;
      }
      const SizeValueType numberOfLines = piece.GetNumberOfPixels() / length;
      IndexType           lineStart = piece.GetIndex();
      for (SizeValueType line = 0; line < numberOfLines; ++line)
      {
        lineFunction(lineStart, length);
        for (unsigned int axis = 1; axis < ImageDimension; ++axis)
        {
          if (++lineStart[axis] < piece.GetIndex(axis) + static_cast<IndexValueType>(piece.GetSize(axis)))
          {
            break;
          }
          lineStart[axis] = piece.GetIndex(axis);
        }
      }
    },
    progress);
}

template <typename TInputImage, typename TOutputImage>
template <typename TValue>
void
MINDSSCImageFilter<TInputImage, TOutputImage>::BoxSumAlongAxis(const RealImageType * input,
                                                               const RegionType &    valueRegion,
                                                               TValue                value,
                                                               unsigned int          axis,
                                                               RealImageType *       output,
                                                               ProcessObject *       progress)
{
  RegionType region = valueRegion;
  region.SetIndex(axis, region.GetIndex(axis) + static_cast<IndexValueType>(m_Radius));
  region.SetSize(axis, region.GetSize(axis) - 2 * m_Radius);
  output->SetRegions(region);
  output->Allocate(); // reuses the buffer when it is large enough

  const OffsetValueType stride = input->GetOffsetTable()[axis];
  const float * const   inputBuffer = input->GetBufferPointer();
  float * const         outputBuffer = output->GetBufferPointer();
  this->ForEachLine(
    region,
    [&](const IndexType & lineStart, SizeValueType length) {
      IndexType first = lineStart;
      first[axis] -= static_cast<IndexValueType>(m_Radius);
      const float * const in = inputBuffer + input->ComputeOffset(first);
      float * const       out = outputBuffer + output->ComputeOffset(lineStart);
      // Summed in the order of the box's voxels, as the Python package does; one pass per voxel
      // of the box so that the loops along the line vectorise.
      for (SizeValueType i = 0; i < length; ++i)
      {
        out[i] = value(in, static_cast<OffsetValueType>(i));
      }
      for (unsigned int k = 1; k <= 2 * m_Radius; ++k)
      {
        const float * const shifted = in + k * stride;
        for (SizeValueType i = 0; i < length; ++i)
        {
          out[i] += value(shifted, static_cast<OffsetValueType>(i));
        }
      }
    },
    progress);
}

template <typename TInputImage, typename TOutputImage>
void
MINDSSCImageFilter<TInputImage, TOutputImage>::GenerateData()
{
  namespace detail = MINDSSCDetail;

  this->AllocateOutputs();
  this->GetMultiThreader()->SetNumberOfWorkUnits(this->GetNumberOfWorkUnits());

  const InputImageType * input = this->GetInput();
  OutputImageType *      output = this->GetOutput();
  const RegionType       inputRegion = input->GetBufferedRegion();
  const SizeValueType    numberOfPixels = inputRegion.GetNumberOfPixels();
  if (numberOfPixels == 0)
  {
    itkExceptionMacro("the input image has no pixels (size " << inputRegion.GetSize() << ")");
  }

  // Intensities as float, scaled by their range (the descriptor is invariant to a * I + b; this
  // only fixes the scale of VarianceEpsilon). The buffered region is the whole input.
  const InputPixelType * const inputBuffer = input->GetBufferPointer();
  float                        lowest = std::numeric_limits<float>::max();
  float                        highest = std::numeric_limits<float>::lowest();
  for (SizeValueType offset = 0; offset < numberOfPixels; ++offset)
  {
    const auto value = static_cast<float>(inputBuffer[offset]);
    if (!std::isfinite(value))
    {
      itkExceptionMacro("the input image holds NaN or infinite values (first at index "
                        << input->ComputeIndex(static_cast<OffsetValueType>(offset))
                        << "); replace them before computing MIND-SSC");
    }
    lowest = std::min(lowest, value);
    highest = std::max(highest, value);
  }
  const float valueRange = highest - lowest > 0.0f ? highest - lowest : 1.0f;

  // Internal images index the voxels from 0 (the input's start index is added back when reading
  // the input and writing the output). `Grown(n)` is the image domain grown by n voxels per side.
  const auto dilation = static_cast<IndexValueType>(m_Dilation);
  const auto radius = static_cast<IndexValueType>(m_Radius);
  RegionType imageDomain;
  imageDomain.SetSize(inputRegion.GetSize());
  const auto Grown = [&imageDomain](IndexValueType voxels) {
    RegionType grown = imageDomain;
    grown.PadByRadius(voxels);
    return grown;
  };
  const IndexType inputStart = inputRegion.GetIndex();
  const SizeType  size = inputRegion.GetSize();

  // D_pq(x) = B_v(x + d p), with v = q - p and B_v = box((I(y) - I(y + d v))^2): pairs sharing v
  // share one box-summed map. v is made canonical (its component on the highest index axis that
  // is nonzero is positive; D is symmetric in p and q). B_v is needed on the domain grown by
  // `dilation`, its squared differences on the domain grown by `dilation + radius`, and those
  // read the image up to `2 * dilation` further, where it repeats its edge voxels.
  const std::vector<NeighbourPairType> pairs = GetNeighbourPairs();
  std::vector<OffsetType>              vectors;
  std::vector<OffsetType>              channelShift(NumberOfChannels);
  std::vector<size_t>                  channelVector(NumberOfChannels);
  for (unsigned int channel = 0; channel < NumberOfChannels; ++channel)
  {
    OffsetType   p = pairs[channel].first;
    OffsetType   v = pairs[channel].second;
    v -= p;
    unsigned int lead = ImageDimension - 1;
    while (v[lead] == 0)
    {
      --lead;
    }
    const OffsetValueType sign = v[lead] < 0 ? -1 : 1;
    if (sign < 0)
    {
      p = pairs[channel].second; // v = q - p becomes p - q
    }
    for (unsigned int axis = 0; axis < ImageDimension; ++axis)
    {
      v[axis] *= sign;
      channelShift[channel][axis] = dilation * p[axis];
    }
    const auto found = std::find(vectors.begin(), vectors.end(), v);
    channelVector[channel] = static_cast<size_t>(found - vectors.begin());
    if (found == vectors.end())
    {
      vectors.push_back(v);
    }
  }

  const IndexValueType grow = dilation + radius;
  const IndexValueType margin = grow + 2 * dilation;

  // Progress: padding 5 %, the box-summed maps 65 %, minimum and variance 10 %, descriptor 20 %.
  float progressStart = 0.0f;
  const auto Stage = [this, &progressStart](float share) {
    auto stage = std::make_unique<ProgressTransformer>(progressStart, progressStart + share, this);
    progressStart += share;
    return stage;
  };

  const RegionType       paddedRegion = Grown(margin);
  const RealImagePointer padded = MakeRealImage(paddedRegion);
  {
    const auto                     stage = Stage(0.05f);
    const typename InputImageType::OffsetValueType * inputStrides = input->GetOffsetTable();
    float * const                  paddedBuffer = padded->GetBufferPointer();
    const auto Clamp = [&size](IndexValueType index, unsigned int axis) {
      return std::min(std::max(index, IndexValueType{ 0 }), static_cast<IndexValueType>(size[axis]) - 1);
    };
    this->ForEachLine(
      paddedRegion,
      [&](const IndexType & lineStart, SizeValueType length) {
        OffsetValueType lineOffset = 0;
        for (unsigned int axis = 1; axis < ImageDimension; ++axis)
        {
          lineOffset += Clamp(lineStart[axis], axis) * inputStrides[axis];
        }
        const InputPixelType * in = inputBuffer + lineOffset;
        float *                out = paddedBuffer + padded->ComputeOffset(lineStart);
        for (SizeValueType i = 0; i < length; ++i)
        {
          out[i] = static_cast<float>(in[Clamp(lineStart[0] + static_cast<IndexValueType>(i), 0)]) / valueRange;
        }
      },
      stage->GetProcessObject());
  }

  // B_v for each v: squared differences summed over the box one index axis at a time, highest
  // axis first (the array order of the Python package); the first pass computes the squared
  // differences as it sums. All passes but the last write to two reused scratch images.
  std::vector<RealImagePointer> boxed;
  {
    const unsigned int     passes = m_Radius > 0 ? ImageDimension : 1;
    const float            share = 0.65f / static_cast<float>(vectors.size() * passes);
    const RealImagePointer scratch[2] = { RealImageType::New(), RealImageType::New() };
    for (const OffsetType & v : vectors)
    {
      OffsetValueType shift = 0;
      for (unsigned int axis = 0; axis < ImageDimension; ++axis)
      {
        shift += dilation * v[axis] * padded->GetOffsetTable()[axis];
      }
      const auto SquaredDifference = [shift](const float * line, OffsetValueType i) {
        const float difference = line[i] - line[i + shift];
        return difference * difference;
      };
      const auto Value = [](const float * line, OffsetValueType i) { return line[i]; };
      RealImagePointer map;
      for (unsigned int pass = 0; pass < passes; ++pass)
      {
        const unsigned int     axis = ImageDimension - 1 - pass;
        const RealImagePointer output = pass + 1 < passes ? scratch[pass % 2] : RealImageType::New();
        const auto             stage = Stage(share);
        if (pass == 0)
        {
          this->BoxSumAlongAxis(padded.GetPointer(), Grown(grow), SquaredDifference, axis, output,
                                stage->GetProcessObject());
        }
        else
        {
          this->BoxSumAlongAxis(map.GetPointer(), map->GetBufferedRegion(), Value, axis, output,
                                stage->GetProcessObject());
        }
        map = output;
      }
      boxed.push_back(map);
    }
  }
  padded->Initialize();

  // Distances: channel c at voxel x is D_c(x) = B_v(x + d p) of its pair, read in place from the
  // box-summed maps. Every loop below runs along a line for one channel at a time, so that it
  // vectorises.
  const auto DistanceLines = [&](const IndexType & lineStart, const float * (&lines)[NumberOfChannels]) {
    for (unsigned int channel = 0; channel < NumberOfChannels; ++channel)
    {
      const RealImageType * map = boxed[channelVector[channel]];
      lines[channel] = map->GetBufferPointer() + map->ComputeOffset(lineStart + channelShift[channel]);
    }
  };

  // The minimum over the channels and the variance V = max(mean_c D - min_c D, 0).
  const RealImagePointer minimumDistance = MakeRealImage(imageDomain);
  const RealImagePointer variance = MakeRealImage(imageDomain);
  {
    const auto stage = Stage(0.1f);
    this->ForEachLine(
      imageDomain,
      [&](const IndexType & lineStart, SizeValueType length) {
        const float * distances[NumberOfChannels];
        DistanceLines(lineStart, distances);
        float * const      minimum = minimumDistance->GetBufferPointer() + minimumDistance->ComputeOffset(lineStart);
        float * const      var = variance->GetBufferPointer() + variance->ComputeOffset(lineStart);
        std::vector<float> sum(length, 0.0f);
        std::copy_n(distances[0], length, minimum);
        for (const float * distance : distances)
        {
          for (SizeValueType i = 0; i < length; ++i)
          {
            minimum[i] = std::min(minimum[i], distance[i]);
            sum[i] += distance[i];
          }
        }
        for (SizeValueType i = 0; i < length; ++i)
        {
          // The mean minus the minimum can round below zero where all channels are equal.
          var[i] = std::max(sum[i] / static_cast<float>(NumberOfChannels) - minimum[i], 0.0f);
        }
      },
      stage->GetProcessObject());
  }

  double varianceSum = 0.0;
  for (SizeValueType offset = 0; offset < numberOfPixels; ++offset)
  {
    varianceSum += variance->GetBufferPointer()[offset];
  }
  const auto  varianceMean = static_cast<float>(varianceSum / static_cast<double>(numberOfPixels));
  const float lowerVariance = detail::VarianceClampLow * varianceMean;
  const float upperVariance = detail::VarianceClampHigh * varianceMean;

  // exp(-(D - min D) / V), computed as D * w - (min D) * w with w = -1 / V: both products round
  // the same way, so the exponent is <= 0 and exactly 0 on the channel holding the minimum.
  OutputComponentType * const outputBuffer = output->GetBufferPointer();
  {
    const auto stage = Stage(0.2f);
    this->ForEachLine(
      imageDomain,
      [&](const IndexType & lineStart, SizeValueType length) {
        const float * distances[NumberOfChannels];
        DistanceLines(lineStart, distances);
        const float * const minimum = minimumDistance->GetBufferPointer() + minimumDistance->ComputeOffset(lineStart);
        const float * const var = variance->GetBufferPointer() + variance->ComputeOffset(lineStart);
        std::vector<float>  weight(length);
        std::vector<float>  minimumTerm(length);
        std::vector<float>  descriptor(length);
        for (SizeValueType i = 0; i < length; ++i)
        {
          weight[i] = -1.0f / (std::min(std::max(var[i], lowerVariance), upperVariance) + detail::VarianceEpsilon);
          minimumTerm[i] = minimum[i] * weight[i];
        }
        OutputComponentType * const out =
          outputBuffer + NumberOfChannels * output->ComputeOffset(inputStart + (lineStart - IndexType{}));
        for (unsigned int channel = 0; channel < NumberOfChannels; ++channel)
        {
          const float * const distance = distances[channel];
          for (SizeValueType i = 0; i < length; ++i)
          {
            descriptor[i] = std::max(distance[i] * weight[i] - minimumTerm[i], -detail::MaximumExponent);
          }
          for (float & value : descriptor)
          {
            value = detail::ExpOfNonPositive(value);
          }
          for (SizeValueType i = 0; i < length; ++i)
          {
            out[i * NumberOfChannels + channel] = static_cast<OutputComponentType>(descriptor[i]);
          }
        }
      },
      stage->GetProcessObject());
  }
}

template <typename TInputImage, typename TOutputImage>
void
MINDSSCImageFilter<TInputImage, TOutputImage>::PrintSelf(std::ostream & os, Indent indent) const
{
  Superclass::PrintSelf(os, indent);
  os << indent << "Radius: " << m_Radius << std::endl;
  os << indent << "Dilation: " << m_Dilation << std::endl;
  os << indent << "NumberOfChannels: " << NumberOfChannels << std::endl;
}

} // namespace itk

#endif // itkMINDSSCImageFilter_hxx
