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

// itk::SUITSRegistrationMethod refuses inputs it cannot register with an itk::ExceptionObject
// whose message names the problem: missing images, images smaller than the coarsest control
// spacing (in voxels or millimetres), a mask or fixed features on another grid, features of different channel counts or
// on one side only, schedules that do not fit. (Images of different dimensions do not compile.)
// A valid setting after a refused one registers.

#include "itkSUITSRegistrationMethod.h"
#include "itkSUITSTestImages.h"

#include <functional>
#include <iostream>
#include <string>

namespace
{
using ImageType = itk::Image<float, 2>;
using RegistrationType = itk::SUITSRegistrationMethod<ImageType, ImageType>;
using FeatureImageType = RegistrationType::FeatureImageType;

FeatureImageType::Pointer
MakeFeatures(const ImageType * grid, unsigned int channels)
{
  auto features = FeatureImageType::New();
  features->CopyInformation(grid);
  features->SetRegions(grid->GetLargestPossibleRegion());
  features->SetNumberOfComponentsPerPixel(channels);
  features->Allocate();
  itk::VariableLengthVector<float> value(channels);
  value.Fill(0.5f);
  features->FillBuffer(value);
  return features;
}

/** Whether Update() after `configure` throws an ExceptionObject whose description contains `expected`. */
bool
Refuses(const std::string & what, const std::function<void(RegistrationType *)> & configure, const std::string & expected)
{
  auto registration = RegistrationType::New();
  configure(registration);
  try
  {
    registration->Update();
  }
  catch (const itk::ExceptionObject & error)
  {
    const std::string message = error.GetDescription();
    if (message.find(expected) != std::string::npos)
    {
      std::cout << what << ": " << message << std::endl;
      return true;
    }
    std::cerr << "FAILED: " << what << ": the message \"" << message << "\" does not contain \"" << expected << "\""
              << std::endl;
    return false;
  }
  std::cerr << "FAILED: " << what << ": no exception" << std::endl;
  return false;
}
} // namespace

int
itkSUITSRegistrationMethodBadInputTest(int, char *[])
{
  const auto image = itk::SUITSTest::MakeNoiseImage<ImageType>({ { 48, 40 } }, ImageType::IndexType(), 3);
  const auto other = itk::SUITSTest::MakeNoiseImage<ImageType>({ { 48, 40 } }, ImageType::IndexType(), 4);
  const auto small = itk::SUITSTest::MakeNoiseImage<ImageType>({ { 48, 16 } }, ImageType::IndexType(), 5);
  const auto shifted = itk::SUITSTest::MakeNoiseImage<ImageType>({ { 47, 40 } }, ImageType::IndexType(), 6);
  auto       mask = RegistrationType::MaskImageType::New();
  mask->SetRegions(shifted->GetLargestPossibleRegion());
  mask->Allocate();
  mask->FillBuffer(1);
  auto emptyMask = RegistrationType::MaskImageType::New();
  emptyMask->SetRegions(image->GetLargestPossibleRegion());
  emptyMask->Allocate();
  emptyMask->FillBuffer(0);

  bool ok = true;
  ok &= Refuses("no moving image", [&](RegistrationType * r) { r->SetFixedImage(image); }, "no moving image");
  ok &= Refuses("no fixed image", [&](RegistrationType * r) { r->SetMovingImage(image); }, "no fixed image");
  ok &= Refuses(
    "image smaller than the grid",
    [&](RegistrationType * r) {
      r->SetFixedImage(small);
      r->SetMovingImage(image);
    },
    "smaller than the coarsest control-point spacing (20 voxels)");
  ImageType::Pointer fine = itk::SUITSTest::MakeNoiseImage<ImageType>({ { 48, 40 } }, ImageType::IndexType(), 8);
  fine->SetSpacing(0.3);
  ok &= Refuses(
    "image smaller than the grid in millimetres",
    [&](RegistrationType * r) {
      r->SetFixedImage(fine);
      r->SetMovingImage(image);
      r->GridSpacingsInPhysicalUnitsOn();
    },
    "smaller than the coarsest control-point spacing (20 mm)");
  ok &= Refuses(
    "mask on another grid",
    [&](RegistrationType * r) {
      r->SetFixedImage(image);
      r->SetMovingImage(other);
      r->SetFixedMask(mask);
    },
    "size mismatch: the fixed mask");
  ok &= Refuses(
    "empty mask",
    [&](RegistrationType * r) {
      r->SetFixedImage(image);
      r->SetMovingImage(other);
      r->SetFixedMask(emptyMask);
    },
    "the fixed mask is empty");
  ok &= Refuses(
    "fixed features on another grid than the fixed image",
    [&](RegistrationType * r) {
      r->SetFixedImage(image);
      r->SetFixedFeatures(MakeFeatures(shifted, 6));
      r->SetMovingFeatures(MakeFeatures(other, 6));
    },
    "size mismatch: the fixed features");
  ok &= Refuses(
    "features of different channel counts",
    [&](RegistrationType * r) {
      r->SetFixedFeatures(MakeFeatures(image, 6));
      r->SetMovingFeatures(MakeFeatures(other, 8));
    },
    "the fixed features have 6 channels but the moving features 8");
  ok &= Refuses(
    "features on one side",
    [&](RegistrationType * r) {
      r->SetFixedFeatures(MakeFeatures(image, 6));
      r->SetMovingImage(other);
    },
    "features were given for the fixed image only");
  ok &= Refuses(
    "iteration counts that do not fit the scales",
    [&](RegistrationType * r) {
      r->SetFixedImage(image);
      r->SetMovingImage(other);
      r->SetNumberOfIterations({ 10, 10 });
    },
    "2 iteration counts for 3 scales");
  ok &= Refuses(
    "grid spacing below 2 voxels",
    [&](RegistrationType * r) {
      r->SetFixedImage(image);
      r->SetMovingImage(other);
      r->SetGridSpacings({ 10, 1 });
    },
    "grid spacing 1 is out of range");
  ok &= Refuses(
    "learning rate out of range",
    [&](RegistrationType * r) {
      r->SetFixedImage(image);
      r->SetMovingImage(other);
      r->SetLearningRate(0.0);
    },
    "learning rate 0 is out of range");

  // the same object registers once the input is fixed
  auto registration = RegistrationType::New();
  registration->SetFixedImage(small);
  registration->SetMovingImage(image);
  registration->SetNumberOfIterations({ 5 });
  try
  {
    registration->Update();
    std::cerr << "FAILED: a 48x16 image with a 20-voxel grid was accepted" << std::endl;
    ok = false;
  }
  catch (const itk::ExceptionObject &)
  {
  }
  registration->SetGridSpacings({ 8, 4 });
  registration->Update();
  ok &= registration->GetNumberOfIterationsRun().size() == 2;
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
