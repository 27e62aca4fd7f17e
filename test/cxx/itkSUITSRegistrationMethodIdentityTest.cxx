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

// itk::SUITSRegistrationMethod leaves two equal images alone: the displacement stays zero and
// every scale stops at its first convergence check, in 2D (an oblique, anisotropic grid with a
// non-zero origin and start index, the moving image a separate copy) and in 3D (with a fixed
// mask and several work units); the observers see the start, every iteration and the end.

#include "itkCommand.h"
#include "itkImageDuplicator.h"
#include "itkImageRegionConstIterator.h"
#include "itkSUITSRegistrationMethod.h"
#include "itkSUITSTestImages.h"

#include <cmath>
#include <iostream>

namespace
{
template <unsigned int VDimension>
bool
StaysIdentity(typename itk::Image<float, VDimension>::Pointer image, unsigned int workUnits, bool mask)
{
  using ImageType = itk::Image<float, VDimension>;
  using RegistrationType = itk::SUITSRegistrationMethod<ImageType, ImageType>;
  auto duplicator = itk::ImageDuplicator<ImageType>::New();
  duplicator->SetInputImage(image);
  duplicator->Update();

  auto registration = RegistrationType::New();
  registration->SetFixedImage(image);
  registration->SetMovingImage(duplicator->GetOutput());
  registration->SetGridSpacings({ 10, 5 });
  registration->SetNumberOfIterations({ 50 });
  registration->SetNumberOfWorkUnits(workUnits);
  if (mask)
  {
    auto fixedMask = RegistrationType::MaskImageType::New();
    fixedMask->CopyInformation(image);
    fixedMask->SetRegions(image->GetLargestPossibleRegion());
    fixedMask->Allocate();
    fixedMask->FillBuffer(1);
    registration->SetFixedMask(fixedMask);
  }
  struct Seen
  {
    unsigned int events = 0;
    unsigned int scale = 0;
    unsigned int iteration = 0;
  } seen;
  auto observer = itk::CStyleCommand::New();
  observer->SetClientData(&seen);
  observer->SetCallback([](itk::Object * caller, const itk::EventObject &, void * data) {
    auto *       state = static_cast<Seen *>(data);
    const auto * method = static_cast<const RegistrationType *>(caller);
    ++state->events;
    state->scale = method->GetCurrentScale();
    state->iteration = method->GetCurrentIteration();
  });
  registration->AddObserver(itk::IterationEvent(), observer);
  unsigned int starts = 0;
  unsigned int ends = 0;
  auto         start = itk::CStyleCommand::New();
  start->SetClientData(&starts);
  start->SetCallback([](itk::Object *, const itk::EventObject &, void * data) { ++*static_cast<unsigned int *>(data); });
  registration->AddObserver(itk::StartEvent(), start);
  auto end = itk::CStyleCommand::New();
  end->SetClientData(&ends);
  end->SetCallback([](itk::Object *, const itk::EventObject &, void * data) { ++*static_cast<unsigned int *>(data); });
  registration->AddObserver(itk::EndEvent(), end);
  registration->Update();

  double largest = 0.0;
  const auto * field = registration->GetTransform()->GetDisplacementField();
  for (itk::ImageRegionConstIterator<typename RegistrationType::DisplacementFieldType> it(
         field, field->GetLargestPossibleRegion());
       !it.IsAtEnd();
       ++it)
  {
    largest = std::max(largest, it.Get().GetNorm());
  }
  const auto & run = registration->GetNumberOfIterationsRun();
  std::cout << VDimension << "D, " << workUnits << " work units" << (mask ? ", fixed mask" : "")
            << ": largest displacement " << largest << " mm, iterations per scale";
  for (auto n : run)
  {
    std::cout << ' ' << n;
  }
  std::cout << ", " << seen.events << " iteration events, last at scale " << seen.scale << " iteration "
            << seen.iteration << ", " << starts << " start and " << ends << " end event" << std::endl;
  bool ok = largest < 1e-6 && run.size() == 2 && run[0] == 10 && run[1] == 10 && seen.events == 20 &&
            seen.scale == 1 && seen.iteration == 10 && starts == 1 && ends == 1;
  if (!ok)
  {
    std::cerr << "FAILED: equal images must give a zero field, stop at the first check of each scale and notify "
                 "every iteration, the start and the end"
              << std::endl;
  }
  return ok;
}
} // namespace

int
itkSUITSRegistrationMethodIdentityTest(int, char *[])
{
  using Image2D = itk::Image<float, 2>;
  using Image3D = itk::Image<float, 3>;
  Image2D::IndexType start2 = { { 5, -3 } };
  auto               image2 = itk::SUITSTest::MakeNoiseImage<Image2D>({ { 40, 33 } }, start2, 7);
  Image2D::SpacingType spacing2;
  spacing2[0] = 0.7;
  spacing2[1] = 2.0;
  image2->SetSpacing(spacing2);
  Image2D::PointType origin2;
  origin2[0] = 12.0;
  origin2[1] = -30.0;
  image2->SetOrigin(origin2);
  Image2D::DirectionType direction2;
  direction2(0, 0) = 0.0;
  direction2(0, 1) = -1.0;
  direction2(1, 0) = 1.0;
  direction2(1, 1) = 0.0;
  image2->SetDirection(direction2);

  auto image3 = itk::SUITSTest::MakeNoiseImage<Image3D>({ { 24, 22, 20 } }, Image3D::IndexType(), 11);

  bool ok = StaysIdentity<2>(image2, 1, false);
  ok &= StaysIdentity<3>(image3, 2, true);
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
