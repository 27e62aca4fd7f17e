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

// itk::MINDSSCImageFilter follows its documented definition for other radii and dilations than
// the defaults (compared with a direct double precision evaluation of the formula, borders
// included), keeps the channel order of the Python package, gives the same result with any
// number of threads, has the descriptor's properties, and refuses bad input with a clear message.

#include "itkMINDSSCImageFilter.h"
#include "itkImageRegionConstIteratorWithIndex.h"
#include "itkSUITSTestImages.h"
#include "itkTestingMacros.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace
{
/** The descriptor evaluated voxel by voxel from its definition, in double precision: channel
 * values of each voxel, voxels in the order of the image buffer. */
template <typename TImage>
std::vector<std::vector<double>>
DirectMIND(const TImage * image, unsigned int radius, unsigned int dilation)
{
  using FilterType = itk::MINDSSCImageFilter<TImage>;
  constexpr unsigned int Dimension = TImage::ImageDimension;
  using IndexType = typename TImage::IndexType;
  const auto region = image->GetLargestPossibleRegion();

  double lowest = std::numeric_limits<double>::max();
  double highest = std::numeric_limits<double>::lowest();
  for (itk::ImageRegionConstIteratorWithIndex<TImage> it(image, region); !it.IsAtEnd(); ++it)
  {
    lowest = std::min(lowest, double{ it.Get() });
    highest = std::max(highest, double{ it.Get() });
  }
  const double valueRange = highest > lowest ? highest - lowest : 1.0;
  // The image outside its domain repeats its edge voxels.
  const auto Value = [&](IndexType index) {
    for (unsigned int axis = 0; axis < Dimension; ++axis)
    {
      const auto first = region.GetIndex(axis);
      const auto last = first + static_cast<itk::IndexValueType>(region.GetSize(axis)) - 1;
      index[axis] = std::min(std::max(index[axis], first), last);
    }
    return double{ image->GetPixel(index) } / valueRange;
  };

  typename TImage::RegionType box;
  box.SetIndex(IndexType::Filled(-static_cast<itk::IndexValueType>(radius)));
  box.SetSize(TImage::SizeType::Filled(2 * radius + 1));
  const auto pairs = FilterType::GetNeighbourPairs();

  std::vector<std::vector<double>> distances;
  std::vector<double>              variances;
  for (itk::ImageRegionConstIteratorWithIndex<TImage> it(image, region); !it.IsAtEnd(); ++it)
  {
    std::vector<double> distance;
    for (const auto & pair : pairs)
    {
      double sum = 0.0;
      // Every offset o of the box: (I(x + o + d p) - I(x + o + d q))^2.
      IndexType o = box.GetIndex();
      for (itk::SizeValueType n = 0; n < box.GetNumberOfPixels(); ++n)
      {
        IndexType a = it.GetIndex();
        IndexType b = it.GetIndex();
        for (unsigned int axis = 0; axis < Dimension; ++axis)
        {
          a[axis] += o[axis] + static_cast<itk::IndexValueType>(dilation) * pair.first[axis];
          b[axis] += o[axis] + static_cast<itk::IndexValueType>(dilation) * pair.second[axis];
        }
        const double difference = Value(a) - Value(b);
        sum += difference * difference;
        for (unsigned int axis = 0; axis < Dimension; ++axis)
        {
          if (++o[axis] <= static_cast<itk::IndexValueType>(radius))
          {
            break;
          }
          o[axis] = -static_cast<itk::IndexValueType>(radius);
        }
      }
      distance.push_back(sum);
    }
    const double minimum = *std::min_element(distance.begin(), distance.end());
    double       mean = 0.0;
    for (const double value : distance)
    {
      mean += value / static_cast<double>(distance.size());
    }
    variances.push_back(std::max(mean - minimum, 0.0));
    distances.push_back(distance);
  }
  double varianceMean = 0.0;
  for (const double value : variances)
  {
    varianceMean += value / static_cast<double>(variances.size());
  }
  for (size_t voxel = 0; voxel < distances.size(); ++voxel)
  {
    const double variance = std::min(std::max(variances[voxel], 1e-3 * varianceMean), 1e3 * varianceMean);
    const double minimum = *std::min_element(distances[voxel].begin(), distances[voxel].end());
    for (double & value : distances[voxel])
    {
      value = std::exp(-std::min(80.0, (value - minimum) / (variance + 1e-12)));
    }
  }
  return distances;
}

/** Largest |filter output - direct evaluation| over all voxels and channels. */
template <typename TImage>
double
DifferenceFromDefinition(const TImage * image, unsigned int radius, unsigned int dilation, unsigned int workUnits)
{
  auto filter = itk::MINDSSCImageFilter<TImage>::New();
  filter->SetInput(image);
  filter->SetRadius(radius);
  filter->SetDilation(dilation);
  filter->SetNumberOfWorkUnits(workUnits);
  filter->Update();
  const auto expected = DirectMIND(image, radius, dilation);
  const auto output = filter->GetOutput();
  double     difference = 0.0;
  for (size_t voxel = 0; voxel < expected.size(); ++voxel)
  {
    const auto value = output->GetPixel(output->ComputeIndex(static_cast<itk::OffsetValueType>(voxel)));
    for (unsigned int channel = 0; channel < expected[voxel].size(); ++channel)
    {
      difference = std::max(difference, std::abs(value[channel] - expected[voxel][channel]));
    }
  }
  std::cout << TImage::ImageDimension << "D " << image->GetLargestPossibleRegion().GetSize() << ", radius " << radius
            << ", dilation " << dilation << ", " << workUnits << " work units: max |filter - definition| = "
            << difference << std::endl;
  return difference;
}

template <unsigned int VDimension>
bool
MatchesTheDefinition(const typename itk::Image<float, VDimension>::SizeType & size)
{
  using ImageType = itk::Image<float, VDimension>;
  const auto image = itk::SUITSTest::MakeNoiseImage<ImageType>(size, typename ImageType::IndexType(), 7);
  bool       ok = true;
  for (const auto & parameters : std::vector<std::pair<unsigned int, unsigned int>>{ { 1, 2 }, { 0, 1 }, { 2, 3 } })
  {
    for (const unsigned int workUnits : { 1u, 5u })
    {
      ok = ok && DifferenceFromDefinition(image.GetPointer(), parameters.first, parameters.second, workUnits) < 1e-5;
    }
  }
  return ok;
}

/** Every value in (0, 1] and exactly 1 on at least one channel of every voxel; all ones for an
 * image without structure. */
template <typename TVectorImage>
bool
HasDescriptorProperties(const TVectorImage * output)
{
  const unsigned int channels = output->GetNumberOfComponentsPerPixel();
  const auto *       buffer = output->GetBufferPointer();
  for (itk::SizeValueType voxel = 0; voxel < output->GetBufferedRegion().GetNumberOfPixels(); ++voxel)
  {
    float maximum = 0.0f;
    for (unsigned int channel = 0; channel < channels; ++channel)
    {
      const float value = buffer[voxel * channels + channel];
      if (!(value > 0.0f && value <= 1.0f))
      {
        return false;
      }
      maximum = std::max(maximum, value);
    }
    if (maximum != 1.0f)
    {
      return false;
    }
  }
  return true;
}

/** Update() raises an itk::ExceptionObject whose description contains `expected`. */
template <typename TFilter>
bool
RefusesWithMessage(TFilter * filter, const std::string & expected)
{
  try
  {
    filter->Update();
  }
  catch (const itk::ExceptionObject & error)
  {
    std::cout << "Expected exception: " << error.GetDescription() << std::endl;
    return std::string(error.GetDescription()).find(expected) != std::string::npos;
  }
  std::cerr << "no exception raised; expected one about " << expected << std::endl;
  return false;
}
} // namespace

int
itkMINDSSCImageFilterDefinitionTest(int, char *[])
{
  using Image2D = itk::Image<float, 2>;
  using Image3D = itk::Image<float, 3>;
  using Filter2D = itk::MINDSSCImageFilter<Image2D>;
  using Filter3D = itk::MINDSSCImageFilter<Image3D>;

  // Channel order: the pairs (n_i, n_j), i < j, of n = (+y, -y, +x, -x) in 2D and
  // (+z, -z, +y, -y, +x, -x) in 3D without pairs on one axis, as ITK offsets (x, y[, z]).
  using O2 = Filter2D::OffsetType;
  const std::vector<Filter2D::NeighbourPairType> expected2D{
    { O2{ { 0, 1 } }, O2{ { 0, -1 } } },  { O2{ { 0, 1 } }, O2{ { 1, 0 } } },  { O2{ { 0, 1 } }, O2{ { -1, 0 } } },
    { O2{ { 0, -1 } }, O2{ { 1, 0 } } },  { O2{ { 0, -1 } }, O2{ { -1, 0 } } }, { O2{ { 1, 0 } }, O2{ { -1, 0 } } }
  };
  ITK_TEST_EXPECT_TRUE(Filter2D::GetNeighbourPairs() == expected2D);
  using O3 = Filter3D::OffsetType;
  const O3 pz{ { 0, 0, 1 } }, mz{ { 0, 0, -1 } }, py{ { 0, 1, 0 } }, my{ { 0, -1, 0 } }, px{ { 1, 0, 0 } },
    mx{ { -1, 0, 0 } };
  const std::vector<Filter3D::NeighbourPairType> expected3D{ { pz, py }, { pz, my }, { pz, px }, { pz, mx },
                                                             { mz, py }, { mz, my }, { mz, px }, { mz, mx },
                                                             { py, px }, { py, mx }, { my, px }, { my, mx } };
  ITK_TEST_EXPECT_TRUE(Filter3D::GetNeighbourPairs() == expected3D);
  ITK_TEST_EXPECT_EQUAL(Filter2D::NumberOfChannels, 6u);
  ITK_TEST_EXPECT_EQUAL(Filter3D::NumberOfChannels, 12u);

  // The filter's exponential is within 2 units in the last place over the whole range it sees.
  double largestExpError = 0.0;
  for (int k = 0; k <= 800000; ++k)
  {
    const float  x = -80.0f * static_cast<float>(k) / 800000.0f;
    const double exact = std::exp(double{ x });
    largestExpError = std::max(largestExpError, std::abs(itk::MINDSSCDetail::ExpOfNonPositive(x) - exact) / exact);
  }
  std::cout << "largest relative error of ExpOfNonPositive on [-80, 0]: " << largestExpError << std::endl;
  ITK_TEST_EXPECT_TRUE(largestExpError < 2.0 * std::numeric_limits<float>::epsilon());

  // The definition, borders included: sizes below the neighbourhood's reach, one row, odd shapes.
  ITK_TEST_EXPECT_TRUE(MatchesTheDefinition<2>({ { 11, 8 } }));
  ITK_TEST_EXPECT_TRUE(MatchesTheDefinition<2>({ { 5, 1 } }));
  ITK_TEST_EXPECT_TRUE(MatchesTheDefinition<3>({ { 7, 6, 5 } }));

  // Descriptor properties; invariance to a * I + b.
  auto filter = Filter3D::New();
  const auto image = itk::SUITSTest::MakeNoiseImage<Image3D>({ { 12, 10, 9 } }, Image3D::IndexType(), 11);
  filter->SetInput(image);
  filter->Update();
  ITK_TEST_EXPECT_EQUAL(filter->GetOutput()->GetNumberOfComponentsPerPixel(), 12u);
  ITK_TEST_EXPECT_TRUE(HasDescriptorProperties(filter->GetOutput()));

  auto rescaled = Image3D::New();
  rescaled->SetRegions(image->GetLargestPossibleRegion());
  rescaled->Allocate();
  const auto voxels = image->GetLargestPossibleRegion().GetNumberOfPixels();
  for (itk::SizeValueType voxel = 0; voxel < voxels; ++voxel)
  {
    rescaled->GetBufferPointer()[voxel] = 250.0f * image->GetBufferPointer()[voxel] - 40.0f;
  }
  auto rescaledFilter = Filter3D::New();
  rescaledFilter->SetInput(rescaled);
  rescaledFilter->Update();
  double invarianceDifference = 0.0;
  for (itk::SizeValueType k = 0; k < voxels * 12; ++k)
  {
    invarianceDifference = std::max(invarianceDifference,
                                    double{ std::abs(filter->GetOutput()->GetBufferPointer()[k] -
                                                     rescaledFilter->GetOutput()->GetBufferPointer()[k]) });
  }
  std::cout << "max |MIND(I) - MIND(250 I - 40)| = " << invarianceDifference << std::endl;
  ITK_TEST_EXPECT_TRUE(invarianceDifference < 1e-4);

  auto constant = Image2D::New();
  constant->SetRegions(Image2D::SizeType{ { 9, 6 } });
  constant->Allocate();
  constant->FillBuffer(3.5f);
  auto constantFilter = Filter2D::New();
  constantFilter->SetInput(constant);
  constantFilter->Update();
  const auto * constantBuffer = constantFilter->GetOutput()->GetBufferPointer();
  ITK_TEST_EXPECT_TRUE(std::all_of(constantBuffer, constantBuffer + 9 * 6 * 6, [](float value) { return value == 1.0f; }));

  // Any scalar pixel type is read as float.
  using ShortImage = itk::Image<short, 2>;
  auto shortImage = ShortImage::New();
  shortImage->SetRegions(ShortImage::SizeType{ { 9, 6 } });
  shortImage->Allocate();
  auto floatImage = Image2D::New();
  floatImage->SetRegions(ShortImage::SizeType{ { 9, 6 } });
  floatImage->Allocate();
  for (unsigned int k = 0; k < 9 * 6; ++k)
  {
    shortImage->GetBufferPointer()[k] = static_cast<short>((k * 37) % 101 - 50);
    floatImage->GetBufferPointer()[k] = shortImage->GetBufferPointer()[k];
  }
  auto shortFilter = itk::MINDSSCImageFilter<ShortImage>::New();
  shortFilter->SetInput(shortImage);
  shortFilter->Update();
  auto floatFilter = Filter2D::New();
  floatFilter->SetInput(floatImage);
  floatFilter->Update();
  ITK_TEST_EXPECT_TRUE(std::equal(shortFilter->GetOutput()->GetBufferPointer(),
                                  shortFilter->GetOutput()->GetBufferPointer() + 9 * 6 * 6,
                                  floatFilter->GetOutput()->GetBufferPointer()));

  // A double precision output holds the same values.
  auto doubleFilter = itk::MINDSSCImageFilter<Image3D, itk::VectorImage<double, 3>>::New();
  doubleFilter->SetInput(image);
  doubleFilter->Update();
  ITK_TEST_EXPECT_TRUE(std::equal(filter->GetOutput()->GetBufferPointer(),
                                  filter->GetOutput()->GetBufferPointer() + voxels * 12,
                                  doubleFilter->GetOutput()->GetBufferPointer(),
                                  [](float single, double twice) { return double{ single } == twice; }));

  // Bad input: NaN or infinite values, a dilation of 0, no input.
  auto withNaN = itk::SUITSTest::MakeNoiseImage<Image2D>({ { 8, 8 } }, Image2D::IndexType(), 3);
  withNaN->SetPixel({ { 2, 5 } }, std::numeric_limits<float>::quiet_NaN());
  auto nanFilter = Filter2D::New();
  nanFilter->SetInput(withNaN);
  ITK_TEST_EXPECT_TRUE(RefusesWithMessage(nanFilter.GetPointer(), "NaN or infinite values (first at index [2, 5])"));
  withNaN->SetPixel({ { 2, 5 } }, std::numeric_limits<float>::infinity());
  withNaN->Modified();
  ITK_TEST_EXPECT_TRUE(RefusesWithMessage(nanFilter.GetPointer(), "NaN or infinite"));

  auto zeroDilation = Filter2D::New();
  zeroDilation->SetInput(constant);
  zeroDilation->SetDilation(0);
  ITK_TEST_EXPECT_TRUE(RefusesWithMessage(zeroDilation.GetPointer(), "Dilation must be at least 1"));

  auto noInput = Filter2D::New();
  ITK_TRY_EXPECT_EXCEPTION(noInput->Update());

  std::cout << "Test finished." << std::endl;
  return EXIT_SUCCESS;
}
