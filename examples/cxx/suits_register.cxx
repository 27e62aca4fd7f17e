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

// Register a moving image to a fixed image with SUITS on MIND-SSC features.
//
//   suits_register fixed moving output_folder
//
// Reads two scalar 2D or 3D images of any format ITK reads, and writes to output_folder:
//   fixed_mind.nrrd          the fixed image's MIND-SSC descriptor (6 or 12 channels)
//   displacement_field.nrrd  the fixed-to-moving displacement field (mm, on the fixed grid)
//   moving_warped.nrrd       the moving image resampled onto the fixed grid through it
// ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS sets the number of threads.

#include "itkCommand.h"
#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"
#include "itkImageIOFactory.h"
#include "itkMINDSSCImageFilter.h"
#include "itkResampleImageFilter.h"
#include "itkSUITSRegistrationMethod.h"
#include "itkTimeProbe.h"

#include <iostream>
#include <string>

namespace
{
template <unsigned int VDimension>
void
Register(const std::string & fixedFile, const std::string & movingFile, const std::string & outputFolder)
{
  using ImageType = itk::Image<float, VDimension>;
  const auto fixed = itk::ReadImage<ImageType>(fixedFile);
  const auto moving = itk::ReadImage<ImageType>(movingFile);

  // MIND-SSC features, as the registration computes them.
  itk::TimeProbe mindTime;
  mindTime.Start();
  auto mind = itk::MINDSSCImageFilter<ImageType>::New();
  mind->SetInput(fixed);
  mind->Update();
  mindTime.Stop();
  itk::WriteImage(mind->GetOutput(), outputFolder + "/fixed_mind.nrrd", true);
  std::cout << "MIND-SSC of the fixed image: " << mind->GetOutput()->GetNumberOfComponentsPerPixel()
            << " channels, " << mindTime.GetTotal() << " s" << std::endl;

  // Registration with the defaults (control spacings 20, 10, 7 voxels; 300 iterations per scale).
  using RegistrationType = itk::SUITSRegistrationMethod<ImageType>;
  auto registration = RegistrationType::New();
  registration->SetFixedImage(fixed);
  registration->SetMovingImage(moving);
  auto observer = itk::CStyleCommand::New();
  observer->SetCallback([](itk::Object * caller, const itk::EventObject &, void *) {
    const auto * method = static_cast<const RegistrationType *>(caller);
    if (method->GetCurrentIteration() % 20 == 0)
    {
      std::cout << "  scale " << method->GetCurrentScale() << ", iteration " << method->GetCurrentIteration()
                << ", movement " << method->GetCurrentMovement() << std::endl;
    }
  });
  registration->AddObserver(itk::IterationEvent(), observer);
  itk::TimeProbe registrationTime;
  registrationTime.Start();
  registration->Update();
  registrationTime.Stop();
  std::cout << "Registration: " << registrationTime.GetTotal() << " s, iterations per scale:";
  for (const unsigned int iterations : registration->GetNumberOfIterationsRun())
  {
    std::cout << " " << iterations;
  }
  std::cout << std::endl;

  const auto transform = registration->GetTransform();
  itk::WriteImage(transform->GetDisplacementField(), outputFolder + "/displacement_field.nrrd", true);

  auto resample = itk::ResampleImageFilter<ImageType, ImageType>::New();
  resample->SetInput(moving);
  resample->SetTransform(transform);
  resample->UseReferenceImageOn();
  resample->SetReferenceImage(fixed);
  itk::WriteImage(resample->GetOutput(), outputFolder + "/moving_warped.nrrd", true);
  std::cout << "Written to " << outputFolder << std::endl;
}
} // namespace

int
main(int argc, char * argv[])
{
  if (argc != 4)
  {
    std::cerr << "Usage: " << argv[0] << " fixed moving output_folder" << std::endl;
    return EXIT_FAILURE;
  }
  try
  {
    const auto imageIO = itk::ImageIOFactory::CreateImageIO(argv[1], itk::IOFileModeEnum::ReadMode);
    if (imageIO == nullptr)
    {
      std::cerr << "Cannot read " << argv[1] << std::endl;
      return EXIT_FAILURE;
    }
    imageIO->SetFileName(argv[1]);
    imageIO->ReadImageInformation();
    switch (imageIO->GetNumberOfDimensions())
    {
      case 2:
        Register<2>(argv[1], argv[2], argv[3]);
        break;
      case 3:
        Register<3>(argv[1], argv[2], argv[3]);
        break;
      default:
        std::cerr << argv[1] << " is neither 2D nor 3D" << std::endl;
        return EXIT_FAILURE;
    }
  }
  catch (const itk::ExceptionObject & error)
  {
    std::cerr << "Error: " << error.GetDescription() << std::endl;
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
