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

// itk::SUITSRegistrationMethod recovers the demo's known displacement on the BrainWeb pair (T1
// fixed, PD deformed by a known smooth field) with a mean error inside the head at most 1.2 times
// that of the Python engine on the same case.
// Arguments: fixed T1 slice (PNG), deformed PD slice, true displacement field (mm), the Python
// engine's error file, all written by test/cxx/make_registration_reference.py.

#include "itkCommand.h"
#include "itkImageFileReader.h"
#include "itkImageRegionConstIteratorWithIndex.h"
#include "itkSUITSRegistrationMethod.h"
#include "itkTimeProbe.h"

#include <fstream>
#include <iostream>
#include <string>

namespace
{
constexpr double AllowedRatio = 1.2;
// voxels whose fixed intensity exceeds this fraction of the maximum are inside the head
constexpr double HeadThreshold = 0.1;

double
ReadPythonError(const char * path)
{
  std::ifstream file(path);
  std::string   key;
  double        value = -1.0;
  while (file >> key >> value)
  {
    if (key == "mean_error_mm")
    {
      return value;
    }
  }
  return -1.0;
}
} // namespace

int
itkSUITSRegistrationMethodBrainWebTest(int argc, char * argv[])
{
  if (argc < 5)
  {
    std::cerr << "Usage: " << argv[0] << " fixed.png moving.mha true_field.mha python_error.txt" << std::endl;
    return EXIT_FAILURE;
  }
  using ImageType = itk::Image<float, 2>;
  using FieldType = itk::Image<itk::Vector<float, 2>, 2>;
  using RegistrationType = itk::SUITSRegistrationMethod<ImageType, ImageType>;

  // the bundled slice as the Python package reads it: 1 mm spacing, origin 0, identity direction
  ImageType::Pointer fixed = itk::ReadImage<ImageType>(argv[1]);
  fixed->SetSpacing(1.0);
  fixed->SetOrigin(0.0);
  ImageType::Pointer moving = itk::ReadImage<ImageType>(argv[2]);
  FieldType::Pointer truth = itk::ReadImage<FieldType>(argv[3]);
  const double       pythonError = ReadPythonError(argv[4]);
  if (pythonError <= 0.0)
  {
    std::cerr << "no mean_error_mm in " << argv[4] << std::endl;
    return EXIT_FAILURE;
  }

  auto registration = RegistrationType::New();
  registration->SetFixedImage(fixed);
  registration->SetMovingImage(moving);
  unsigned int iterations = 0;
  auto         counter = itk::CStyleCommand::New();
  counter->SetClientData(&iterations);
  counter->SetCallback([](itk::Object *, const itk::EventObject &, void * data) { ++*static_cast<unsigned int *>(data); });
  registration->AddObserver(itk::IterationEvent(), counter);
  itk::TimeProbe clock;
  clock.Start();
  registration->Update();
  clock.Stop();

  const RegistrationType::TransformType * transform = registration->GetTransform();
  const auto *                            field = transform->GetDisplacementField();
  float                                   maximum = 0.0f;
  for (itk::ImageRegionConstIterator<ImageType> it(fixed, fixed->GetLargestPossibleRegion()); !it.IsAtEnd(); ++it)
  {
    maximum = std::max(maximum, it.Get());
  }
  double        errorSum = 0.0;
  double        beforeSum = 0.0;
  unsigned long count = 0;
  for (itk::ImageRegionConstIteratorWithIndex<ImageType> it(fixed, fixed->GetLargestPossibleRegion()); !it.IsAtEnd();
       ++it)
  {
    if (it.Get() <= HeadThreshold * maximum)
    {
      continue;
    }
    const auto estimated = field->GetPixel(it.GetIndex());
    const auto expected = truth->GetPixel(it.GetIndex());
    double     error = 0.0;
    double     before = 0.0;
    for (unsigned int a = 0; a < 2; ++a)
    {
      error += (estimated[a] - expected[a]) * (estimated[a] - expected[a]);
      before += expected[a] * expected[a];
    }
    errorSum += std::sqrt(error);
    beforeSum += std::sqrt(before);
    ++count;
  }
  const double meanError = errorSum / count;
  std::cout << "mean error inside the head: before " << beforeSum / count << " mm, C++ " << meanError
            << " mm, Python " << pythonError << " mm (ratio " << meanError / pythonError << ")" << std::endl;
  std::cout << "iterations per scale:";
  for (auto n : registration->GetNumberOfIterationsRun())
  {
    std::cout << ' ' << n;
  }
  std::cout << "; " << iterations << " iteration events; " << clock.GetTotal() << " s with "
            << registration->GetNumberOfWorkUnits() << " work units" << std::endl;

  unsigned int expectedEvents = 0;
  for (auto n : registration->GetNumberOfIterationsRun())
  {
    expectedEvents += n;
  }
  if (iterations != expectedEvents)
  {
    std::cerr << "expected one IterationEvent per iteration (" << expectedEvents << "), got " << iterations
              << std::endl;
    return EXIT_FAILURE;
  }
  if (!(meanError <= AllowedRatio * pythonError))
  {
    std::cerr << "the C++ error " << meanError << " mm exceeds " << AllowedRatio << " times the Python error "
              << pythonError << " mm" << std::endl;
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
