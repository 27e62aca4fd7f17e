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

// The output transform of itk::SUITSRegistrationMethod keeps the geometry: on a fixed image with
// anisotropic spacing, an oblique direction and a non-zero origin, registered to a moving image
// on another (axis-aligned) grid, a known translation in millimetres is recovered; the field
// carries the fixed image's origin, spacing, direction and region; the same holds with control
// spacings in millimetres; an initial transform is composed into the result; the transform warps
// the moving image onto the fixed one; the work units do not change the result; a fixed mask
// restricts the descent.

#include "itkEuler2DTransform.h"
#include "itkImageRegionConstIteratorWithIndex.h"
#include "itkImageRegionIteratorWithIndex.h"
#include "itkResampleImageFilter.h"
#include "itkSUITSTestImages.h"
#include "itkSUITSRegistrationMethod.h"
#include "itkTranslationTransform.h"

#include <cmath>
#include <iostream>

namespace
{
using ImageType = itk::Image<float, 2>;
using RegistrationType = itk::SUITSRegistrationMethod<ImageType, ImageType>;
using PointType = ImageType::PointType;
using VectorType = itk::Vector<double, 2>;

/** A smooth pattern of the physical position (mm), with structure at 20-40 mm. */
double
Pattern(const PointType & p)
{
  return std::sin(p[0] / 6.0) * std::cos(p[1] / 7.0) + 0.5 * std::sin((p[0] + p[1]) / 9.0);
}

/** An image of `size` voxels on the given grid holding `value(point)`. */
template <typename TFunction>
ImageType::Pointer
MakeImage(const ImageType::SizeType &      size,
          const ImageType::SpacingType &   spacing,
          const PointType &                origin,
          const ImageType::DirectionType & direction,
          TFunction                        value)
{
  auto image = ImageType::New();
  image->SetRegions(ImageType::RegionType(size));
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  itk::SUITSTest::FillFromPhysicalPoints(image.GetPointer(), value);
  return image;
}

/** Mean and largest distance (mm) between the field and `expected` over the voxels at least
 * `margin` voxels from the fixed image's edge. */
std::pair<double, double>
FieldError(const RegistrationType::TransformType * transform, const VectorType & expected, long margin)
{
  const auto * field = transform->GetDisplacementField();
  const auto   region = field->GetLargestPossibleRegion();
  double       sum = 0.0;
  double       largest = 0.0;
  long         count = 0;
  for (itk::ImageRegionConstIteratorWithIndex<RegistrationType::DisplacementFieldType> it(field, region); !it.IsAtEnd();
       ++it)
  {
    const auto index = it.GetIndex();
    bool       inside = true;
    for (unsigned int a = 0; a < 2; ++a)
    {
      inside = inside && index[a] >= margin && index[a] < static_cast<long>(region.GetSize()[a]) - margin;
    }
    if (!inside)
    {
      continue;
    }
    const double error = (it.Get() - expected).GetNorm();
    sum += error;
    largest = std::max(largest, error);
    ++count;
  }
  return { sum / count, largest };
}

bool
Check(bool condition, const char * what)
{
  if (!condition)
  {
    std::cerr << "FAILED: " << what << std::endl;
  }
  return condition;
}
} // namespace

int
itkSUITSRegistrationMethodGeometryTest(int, char *[])
{
  // fixed: 0.8 x 1.5 mm voxels, rotated by 30 degrees, origin far from 0
  ImageType::SizeType      fixedSize = { { 96, 64 } };
  ImageType::SpacingType   fixedSpacing;
  fixedSpacing[0] = 0.8;
  fixedSpacing[1] = 1.5;
  PointType fixedOrigin;
  fixedOrigin[0] = -40.0;
  fixedOrigin[1] = 25.0;
  const double             angle = 30.0 * std::acos(-1.0) / 180.0;
  ImageType::DirectionType direction;
  direction(0, 0) = std::cos(angle);
  direction(0, 1) = -std::sin(angle);
  direction(1, 0) = std::sin(angle);
  direction(1, 1) = std::cos(angle);
  const auto fixed = MakeImage(fixedSize, fixedSpacing, fixedOrigin, direction, Pattern);

  // moving: another contrast of the pattern translated by t, on an axis-aligned 1 mm grid that
  // covers the fixed image; the fixed point x corresponds to the moving point x + t
  VectorType translation;
  translation[0] = 2.0;
  translation[1] = -1.5;
  ImageType::SizeType    movingSize = { { 140, 140 } };
  ImageType::SpacingType movingSpacing(1.0);
  PointType              movingOrigin;
  movingOrigin[0] = -80.0;
  movingOrigin[1] = 15.0;
  ImageType::DirectionType identity;
  identity.SetIdentity();
  const auto moving = MakeImage(movingSize, movingSpacing, movingOrigin, identity, [&](const PointType & p) {
    return 3.0 - 2.0 * Pattern(p - translation); // inverted contrast: another modality
  });

  bool ok = true;
  auto registration = RegistrationType::New();
  registration->SetFixedImage(fixed);
  registration->SetMovingImage(moving);
  registration->Update();
  const auto * transform = registration->GetTransform();
  const auto * field = transform->GetDisplacementField();
  ok &= Check(field->GetLargestPossibleRegion() == fixed->GetLargestPossibleRegion(), "the field has the fixed region");
  ok &= Check((field->GetSpacing() - fixed->GetSpacing()).GetNorm() < 1e-12, "the field has the fixed spacing");
  ok &= Check(field->GetOrigin().EuclideanDistanceTo(fixed->GetOrigin()) < 1e-12, "the field has the fixed origin");
  ok &= Check((field->GetDirection().GetVnlMatrix() - fixed->GetDirection().GetVnlMatrix()).absolute_value_max() <
                1e-12,
              "the field has the fixed direction");
  const auto error = FieldError(transform, translation, 6);
  std::cout << "translation (" << translation << ") mm: mean error " << error.first << " mm, largest " << error.second
            << " mm away from the edge" << std::endl;
  ok &= Check(error.first < 0.05 && error.second < 0.25, "the translation in mm is recovered");

  // the transform maps fixed points to moving points: resampling gives the fixed pattern back
  using ResampleType = itk::ResampleImageFilter<ImageType, ImageType, double>;
  auto resample = ResampleType::New();
  resample->SetInput(moving);
  resample->SetTransform(transform);
  resample->SetOutputParametersFromImage(fixed);
  resample->Update();
  double        warpedError = 0.0;
  long          count = 0;
  const auto *  warped = resample->GetOutput();
  for (itk::ImageRegionConstIteratorWithIndex<ImageType> it(fixed, fixed->GetLargestPossibleRegion()); !it.IsAtEnd();
       ++it)
  {
    warpedError += std::abs(warped->GetPixel(it.GetIndex()) - (3.0 - 2.0 * it.Get()));
    ++count;
  }
  std::cout << "mean intensity error of the warped moving image: " << warpedError / count << std::endl;
  ok &= Check(warpedError / count < 0.02, "ResampleImageFilter with the transform warps the moving image onto the fixed");

  // control spacings in millimetres: different in voxels along the two axes
  auto physical = RegistrationType::New();
  physical->SetFixedImage(fixed);
  physical->SetMovingImage(moving);
  physical->GridSpacingsInPhysicalUnitsOn();
  physical->SetGridSpacings({ 24, 12, 8 });
  physical->Update();
  const auto physicalError = FieldError(physical->GetTransform(), translation, 6);
  std::cout << "with control spacings of 24, 12, 8 mm: mean error " << physicalError.first << " mm, largest "
            << physicalError.second << " mm" << std::endl;
  ok &= Check(physicalError.first < 0.05 && physicalError.second < 0.25,
              "the translation is recovered with control spacings in millimetres");

  // the work units change nothing: each value is computed by one of them in a fixed order
  auto threaded = RegistrationType::New();
  threaded->SetFixedImage(fixed);
  threaded->SetMovingImage(moving);
  threaded->SetNumberOfWorkUnits(registration->GetNumberOfWorkUnits() == 3 ? 2 : 3);
  threaded->Update();
  double threadDifference = 0.0;
  for (itk::ImageRegionConstIteratorWithIndex<RegistrationType::DisplacementFieldType> it(
         threaded->GetTransform()->GetDisplacementField(), fixed->GetLargestPossibleRegion());
       !it.IsAtEnd();
       ++it)
  {
    threadDifference = std::max(threadDifference, (it.Get() - field->GetPixel(it.GetIndex())).GetNorm());
  }
  std::cout << "largest difference between " << registration->GetNumberOfWorkUnits() << " and "
            << threaded->GetNumberOfWorkUnits() << " work units: " << threadDifference << " mm" << std::endl;
  ok &= Check(threadDifference < 1e-4, "the result does not depend on the number of work units");

  // a fixed mask: only its voxels drive the grid; the translation is found inside it, and far
  // from it (beyond the control points it reaches) the field stays small
  auto mask = RegistrationType::MaskImageType::New();
  mask->CopyInformation(fixed);
  mask->SetRegions(fixed->GetLargestPossibleRegion());
  mask->Allocate();
  for (itk::ImageRegionIteratorWithIndex<RegistrationType::MaskImageType> it(mask, mask->GetLargestPossibleRegion());
       !it.IsAtEnd();
       ++it)
  {
    it.Set(it.GetIndex()[0] < 40 ? 1 : 0);
  }
  auto masked = RegistrationType::New();
  masked->SetFixedImage(fixed);
  masked->SetMovingImage(moving);
  masked->SetFixedMask(mask);
  masked->Update();
  double insideError = 0.0;
  double outsideLength = 0.0;
  long   insideCount = 0;
  long   outsideCount = 0;
  for (itk::ImageRegionConstIteratorWithIndex<RegistrationType::DisplacementFieldType> it(
         masked->GetTransform()->GetDisplacementField(), fixed->GetLargestPossibleRegion());
       !it.IsAtEnd();
       ++it)
  {
    const auto index = it.GetIndex();
    if (index[1] < 6 || index[1] >= 58)
    {
      continue;
    }
    if (index[0] >= 6 && index[0] < 34)
    {
      insideError += (it.Get() - translation).GetNorm();
      ++insideCount;
    }
    else if (index[0] >= 84)
    {
      outsideLength += it.Get().GetNorm();
      ++outsideCount;
    }
  }
  std::cout << "with a mask on the first 40 columns: mean error inside " << insideError / insideCount
            << " mm, mean displacement beyond column 84 " << outsideLength / outsideCount << " mm (of "
            << translation.GetNorm() << ")" << std::endl;
  ok &= Check(insideError / insideCount < 0.1 && outsideLength / outsideCount < 0.5 * translation.GetNorm(),
              "the fixed mask restricts the descent");

  // an initial transform is composed into the result: given the translation, the field holds it
  auto initial = itk::TranslationTransform<double, 2>::New();
  initial->SetOffset(translation);
  registration->SetInitialTransform(initial);
  registration->Update();
  const auto composed = FieldError(registration->GetTransform(), translation, 6);
  std::cout << "with the translation as initial transform: mean error " << composed.first << " mm, largest "
            << composed.second << " mm" << std::endl;
  ok &= Check(composed.first < 0.03 && composed.second < 0.1, "the initial transform is composed into the result");

  // a rotation as initial transform: the composed field is the rotation's displacement
  auto rotation = itk::Euler2DTransform<double>::New();
  PointType centre;
  centre[0] = 0.0;
  centre[1] = 50.0;
  rotation->SetCenter(centre);
  rotation->SetAngle(0.02);
  const auto rotated = MakeImage(movingSize, movingSpacing, movingOrigin, identity, [&](const PointType & p) {
    return 3.0 - 2.0 * Pattern(rotation->GetInverseTransform()->TransformPoint(p));
  });
  registration->SetMovingImage(rotated);
  registration->SetInitialTransform(rotation);
  registration->Update();
  double largestRotation = 0.0;
  for (itk::ImageRegionConstIteratorWithIndex<RegistrationType::DisplacementFieldType> it(
         registration->GetTransform()->GetDisplacementField(), fixed->GetLargestPossibleRegion());
       !it.IsAtEnd();
       ++it)
  {
    PointType point;
    fixed->TransformIndexToPhysicalPoint(it.GetIndex(), point);
    largestRotation = std::max(largestRotation, (it.Get() - (rotation->TransformPoint(point) - point)).GetNorm());
  }
  std::cout << "with a rotation as initial transform: largest deviation from it " << largestRotation << " mm"
            << std::endl;
  ok &= Check(largestRotation < 0.1, "a rotation as initial transform is kept");
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
