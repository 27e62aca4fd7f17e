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

// itk::MINDSSCImageFilter keeps the input's geometry: anisotropic spacing, an oblique direction,
// a non-zero origin and a non-zero start index come out unchanged, and do not change the values
// (the descriptor is defined on the voxel grid). A smaller requested output region still gets the
// whole image's descriptor.

#include "itkMINDSSCImageFilter.h"
#include "itkSUITSTestImages.h"
#include "itkTestingMacros.h"

#include <algorithm>
#include <cmath>

namespace
{
template <unsigned int VDimension>
bool
KeepsGeometry()
{
  using ImageType = itk::Image<float, VDimension>;
  using FilterType = itk::MINDSSCImageFilter<ImageType>;
  typename ImageType::SizeType  size;
  typename ImageType::IndexType start;
  typename ImageType::SpacingType spacing;
  typename ImageType::PointType   origin;
  const double                    spacings[] = { 0.7, 1.3, 2.5 };
  const itk::IndexValueType       starts[] = { 3, -2, 5 };
  const double                    origins[] = { -12.5, 40.0, 7.25 };
  for (unsigned int axis = 0; axis < VDimension; ++axis)
  {
    size[axis] = 13 - 2 * axis;
    start[axis] = starts[axis];
    spacing[axis] = spacings[axis];
    origin[axis] = origins[axis];
  }
  // A rotation by 30 degrees in the x-y plane (and, in 3D, by 20 degrees about x).
  typename ImageType::DirectionType direction;
  direction.SetIdentity();
  const double c = std::cos(M_PI / 6.0), s = std::sin(M_PI / 6.0);
  direction[0][0] = c;
  direction[0][1] = -s;
  direction[1][0] = s;
  direction[1][1] = c;
  if (VDimension == 3)
  {
    typename ImageType::DirectionType tilt;
    tilt.SetIdentity();
    const double ct = std::cos(M_PI / 9.0), st = std::sin(M_PI / 9.0);
    tilt[1][1] = ct;
    tilt[1][2] = -st;
    tilt[2][1] = st;
    tilt[2][2] = ct;
    direction = tilt * direction;
  }

  const auto image = itk::SUITSTest::MakeNoiseImage<ImageType>(size, start, 5);
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);

  auto filter = FilterType::New();
  filter->SetInput(image);
  // Ask for a part of the output only: the filter produces all of it.
  typename ImageType::RegionType part(start, size);
  part.ShrinkByRadius(2);
  filter->GetOutput()->SetRequestedRegion(part);
  filter->Update();
  const auto output = filter->GetOutput();
  ITK_TEST_EXPECT_EQUAL(output->GetLargestPossibleRegion(), image->GetLargestPossibleRegion());
  ITK_TEST_EXPECT_EQUAL(output->GetBufferedRegion(), image->GetLargestPossibleRegion());
  ITK_TEST_EXPECT_EQUAL(output->GetSpacing(), spacing);
  ITK_TEST_EXPECT_EQUAL(output->GetOrigin(), origin);
  ITK_TEST_EXPECT_EQUAL(output->GetDirection(), direction);
  ITK_TEST_EXPECT_EQUAL(output->GetNumberOfComponentsPerPixel(), FilterType::NumberOfChannels);

  // The same voxels on a default grid (start 0, unit spacing, identity direction, origin 0).
  auto plain = ImageType::New();
  plain->SetRegions(size);
  plain->Allocate();
  std::copy_n(image->GetBufferPointer(), image->GetBufferedRegion().GetNumberOfPixels(), plain->GetBufferPointer());
  auto plainFilter = FilterType::New();
  plainFilter->SetInput(plain);
  plainFilter->Update();
  const auto   count = plain->GetBufferedRegion().GetNumberOfPixels() * FilterType::NumberOfChannels;
  const bool   sameValues = std::equal(output->GetBufferPointer(), output->GetBufferPointer() + count,
                                     plainFilter->GetOutput()->GetBufferPointer());
  std::cout << VDimension << "D: geometry kept, values " << (sameValues ? "equal" : "DIFFERENT")
            << " to those on a default grid" << std::endl;
  return sameValues;
}
} // namespace

int
itkMINDSSCImageFilterGeometryTest(int, char *[])
{
  ITK_TEST_EXPECT_TRUE(KeepsGeometry<2>());
  ITK_TEST_EXPECT_TRUE(KeepsGeometry<3>());
  std::cout << "Test finished." << std::endl;
  return EXIT_SUCCESS;
}
