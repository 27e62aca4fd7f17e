"""An itk-elastix affine pre-alignment composed with SUITS.

Run: python examples/elastix_initial_transform.py   (needs: pip install itk-elastix)
"""

import itk

import itk_suits
from itk_suits.sample_data import data_path

fixed = itk.imread(str(data_path("brainweb_t1.png")), itk.F)
moving = itk.imread(str(data_path("brainweb_pd.png")), itk.F)

parameters = itk.ParameterObject.New()
parameters.AddParameterMap(parameters.GetDefaultParameterMap("affine"))
elastix = itk.ElastixRegistrationMethod.New(fixed, moving, parameter_object=parameters, log_to_console=False)
elastix.Update()
affine = elastix.ConvertToItkTransform(elastix.GetCombinationTransform())

result = itk_suits.register(fixed, moving, initial_transform=affine)
print(type(result.transform).__name__, "with", result.transform.GetNumberOfTransforms(), "transforms")
warped = itk.resample_image_filter(moving, transform=result.transform, use_reference_image=True, reference_image=fixed)
print("resampled with the composite:", itk.size(warped))
