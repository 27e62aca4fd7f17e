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
#ifndef itkSUITSTestImages_h
#define itkSUITSTestImages_h

// Synthetic images shared by the C++ tests of the SUITS module.

#include "itkImage.h"
#include "itkImageRegionIteratorWithIndex.h"
#include "itkMersenneTwisterRandomVariateGenerator.h"

namespace itk
{
namespace SUITSTest
{
/** Image of `size` voxels (start index `start`, unit spacing, identity direction) holding uniform
 * noise in [0, 1) from `seed`, plus `scale` times a smooth ramp so that the structure is not
 * only noise. Reproducible for a given seed. */
template <typename TImage>
typename TImage::Pointer
MakeNoiseImage(const typename TImage::SizeType & size,
               typename TImage::IndexType        start,
               uint32_t                          seed,
               double                            scale = 0.5)
{
  auto image = TImage::New();
  image->SetRegions(typename TImage::RegionType(start, size));
  image->Allocate();
  auto random = Statistics::MersenneTwisterRandomVariateGenerator::New();
  random->SetSeed(seed);
  for (ImageRegionIteratorWithIndex<TImage> it(image, image->GetLargestPossibleRegion()); !it.IsAtEnd(); ++it)
  {
    double ramp = 0.0;
    for (unsigned int axis = 0; axis < TImage::ImageDimension; ++axis)
    {
      ramp += static_cast<double>(it.GetIndex()[axis] - start[axis]) / static_cast<double>(size[axis]);
    }
    it.Set(static_cast<typename TImage::PixelType>(random->GetUniformVariate(0.0, 1.0) + scale * ramp));
  }
  return image;
}

/** Sets every voxel of the allocated `image` to `value(point)`, `point` its physical position (mm). */
template <typename TImage, typename TFunction>
void
FillFromPhysicalPoints(TImage * image, TFunction value)
{
  for (ImageRegionIteratorWithIndex<TImage> it(image, image->GetLargestPossibleRegion()); !it.IsAtEnd(); ++it)
  {
    typename TImage::PointType point;
    image->TransformIndexToPhysicalPoint(it.GetIndex(), point);
    it.Set(static_cast<typename TImage::PixelType>(value(point)));
  }
}
} // namespace SUITSTest
} // namespace itk

#endif // itkSUITSTestImages_h
