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

// itk::MINDSSCImageFilter equals the Python package's MIND-SSC within 1e-4 on a real image.
// Arguments: input image (2D or 3D, any scalar pixel type), reference MIND-SSC written by
// test/cxx/make_reference.py, output file for the C++ result.

#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"
#include "itkImageIOFactory.h"
#include "itkImageRegionConstIterator.h"
#include "itkMINDSSCImageFilter.h"
#include "itkTestingMacros.h"

#include <algorithm>
#include <cmath>
#include <iostream>

namespace
{
constexpr double Tolerance = 1e-4;

template <unsigned int VDimension>
int
CompareWithReference(const char * inputFile, const char * referenceFile, const char * outputFile)
{
  using ImageType = itk::Image<float, VDimension>;
  using FilterType = itk::MINDSSCImageFilter<ImageType>;
  using VectorImageType = typename FilterType::OutputImageType;

  const auto input = itk::ReadImage<ImageType>(inputFile);
  const auto reference = itk::ReadImage<VectorImageType>(referenceFile);

  auto filter = FilterType::New();
  ITK_EXERCISE_BASIC_OBJECT_METHODS(filter, MINDSSCImageFilter, ImageToImageFilter);
  // The defaults are those of the Python package (radius 1, dilation 2).
  ITK_TEST_EXPECT_EQUAL(filter->GetRadius(), 1u);
  ITK_TEST_EXPECT_EQUAL(filter->GetDilation(), 2u);
  filter->SetInput(input);
  ITK_TRY_EXPECT_NO_EXCEPTION(filter->Update());
  const VectorImageType * output = filter->GetOutput();

  ITK_TEST_EXPECT_EQUAL(output->GetNumberOfComponentsPerPixel(), reference->GetNumberOfComponentsPerPixel());
  ITK_TEST_EXPECT_EQUAL(output->GetLargestPossibleRegion().GetSize(), reference->GetLargestPossibleRegion().GetSize());
  // The reference keeps the geometry of the input file, as the output must.
  ITK_TEST_EXPECT_EQUAL(output->GetOrigin(), reference->GetOrigin());
  ITK_TEST_EXPECT_EQUAL(output->GetSpacing(), reference->GetSpacing());
  ITK_TEST_EXPECT_EQUAL(output->GetDirection(), reference->GetDirection());

  const unsigned int channels = output->GetNumberOfComponentsPerPixel();
  double             maximumDifference = 0.0;
  double             meanValue = 0.0;
  itk::ImageRegionConstIterator<VectorImageType> outputIt(output, output->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<VectorImageType> referenceIt(reference, reference->GetLargestPossibleRegion());
  for (; !outputIt.IsAtEnd(); ++outputIt, ++referenceIt)
  {
    const auto value = outputIt.Get();
    const auto expected = referenceIt.Get();
    for (unsigned int channel = 0; channel < channels; ++channel)
    {
      maximumDifference = std::max(maximumDifference, std::abs(double{ value[channel] } - double{ expected[channel] }));
      meanValue += value[channel];
    }
  }
  meanValue /= static_cast<double>(output->GetLargestPossibleRegion().GetNumberOfPixels() * channels);

  itk::WriteImage(output, outputFile, true);
  std::cout << VDimension << "D, " << output->GetLargestPossibleRegion().GetSize() << " voxels, " << channels
            << " channels: max |C++ - Python| = " << maximumDifference << " (tolerance " << Tolerance
            << "), mean descriptor value " << meanValue << std::endl;
  // A descriptor of all ones (no structure seen) would pass a loose comparison with itself only.
  ITK_TEST_EXPECT_TRUE(meanValue < 0.9);
  if (!(maximumDifference <= Tolerance))
  {
    std::cerr << "Test failed: the C++ MIND-SSC differs from the Python one by " << maximumDifference << std::endl;
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
} // namespace

int
itkMINDSSCImageFilterTest(int argc, char * argv[])
{
  if (argc < 4)
  {
    std::cerr << "Usage: " << itkNameOfTestExecutableMacro(argv) << " input reference output" << std::endl;
    return EXIT_FAILURE;
  }
  const auto imageIO = itk::ImageIOFactory::CreateImageIO(argv[1], itk::IOFileModeEnum::ReadMode);
  if (imageIO == nullptr)
  {
    std::cerr << "Test failed: cannot read " << argv[1] << std::endl;
    return EXIT_FAILURE;
  }
  imageIO->SetFileName(argv[1]);
  imageIO->ReadImageInformation();
  switch (imageIO->GetNumberOfDimensions())
  {
    case 2:
      return CompareWithReference<2>(argv[1], argv[2], argv[3]);
    case 3:
      return CompareWithReference<3>(argv[1], argv[2], argv[3]);
    default:
      std::cerr << "Test failed: " << argv[1] << " is neither 2D nor 3D" << std::endl;
      return EXIT_FAILURE;
  }
}
