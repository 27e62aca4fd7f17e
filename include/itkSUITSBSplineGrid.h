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
#ifndef itkSUITSBSplineGrid_h
#define itkSUITSBSplineGrid_h

#include "itkIntTypes.h"
#include "itkMultiThreaderBase.h"

#include "vnl/algo/vnl_svd.h"
#include "vnl/vnl_matrix.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace itk
{

/** \class SUITSSparseAxisMatrix
 * \brief A matrix applied along one axis of a multi-dimensional array, stored by rows (CSR).
 *
 * Row i holds the weights of the input positions that make output position i along the axis.
 * The B-spline basis matrices (four non-zero weights per row), their transposes (the adjoint)
 * and the dense least-squares refinement maps between grids are all of this kind.
 *
 * \ingroup SUITS
 */
struct SUITSSparseAxisMatrix
{
  /** Number of output positions (rows) and input positions (columns). */
  SizeValueType Rows{ 0 };
  SizeValueType Columns{ 0 };
  /** Row i's entries are Index[k], Weight[k] for k in [Start[i], Start[i + 1]). */
  std::vector<SizeValueType> Start{ 0 };
  std::vector<SizeValueType> Index;
  std::vector<double>        Weight;

  /** The transpose, with the same entries. */
  SUITSSparseAxisMatrix
  Transposed() const
  {
    SUITSSparseAxisMatrix out;
    out.Rows = Columns;
    out.Columns = Rows;
    std::vector<std::vector<std::pair<SizeValueType, double>>> rows(Columns);
    for (SizeValueType i = 0; i < Rows; ++i)
    {
      for (SizeValueType k = Start[i]; k < Start[i + 1]; ++k)
      {
        rows[Index[k]].emplace_back(i, Weight[k]);
      }
    }
    for (const auto & row : rows)
    {
      for (const auto & entry : row)
      {
        out.Index.push_back(entry.first);
        out.Weight.push_back(entry.second);
      }
      out.Start.push_back(out.Index.size());
    }
    return out;
  }

  /** The largest column sum: the summed weight of the best supported input position. */
  double
  LargestColumnSum() const
  {
    std::vector<double> sums(Columns, 0.0);
    for (SizeValueType k = 0; k < Index.size(); ++k)
    {
      sums[Index[k]] += Weight[k];
    }
    return sums.empty() ? 0.0 : *std::max_element(sums.begin(), sums.end());
  }
};


/** Apply \p matrix along \p axis of an array.
 *
 * \p in has \p components blocks of an array of \p shape (ITK index order: axis 0 varies
 * fastest); \p out receives the same number of blocks with shape[axis] replaced by
 * matrix.Rows. Output rows are computed in parallel with \p threader.
 */
template <typename TIn, typename TOut, unsigned int VDimension>
void
SUITSApplyAlongAxis(const std::vector<TIn> &                         in,
                    const std::array<SizeValueType, VDimension> &     shape,
                    unsigned int                                      components,
                    unsigned int                                      axis,
                    const SUITSSparseAxisMatrix &                     matrix,
                    std::vector<TOut> &                               out,
                    MultiThreaderBase *                               threader)
{
  SizeValueType inner = 1;
  for (unsigned int a = 0; a < axis; ++a)
  {
    inner *= shape[a];
  }
  SizeValueType outer = components;
  for (unsigned int a = axis + 1; a < VDimension; ++a)
  {
    outer *= shape[a];
  }
  const SizeValueType length = shape[axis];
  const SizeValueType rows = matrix.Rows;
  out.assign(outer * rows * inner, TOut{});
  const TIn * source = in.data();
  TOut *      target = out.data();
  if (inner == 1)
  {
    // along the contiguous axis: one work item per line
    threader->ParallelizeArray(
      0,
      outer,
      [&](SizeValueType o) {
        const TIn * line = source + o * length;
        TOut *      result = target + o * rows;
        for (SizeValueType i = 0; i < rows; ++i)
        {
          TOut sum{};
          for (SizeValueType k = matrix.Start[i]; k < matrix.Start[i + 1]; ++k)
          {
            sum += static_cast<TOut>(matrix.Weight[k]) * static_cast<TOut>(line[matrix.Index[k]]);
          }
          result[i] = sum;
        }
      },
      nullptr);
    return;
  }
  // across contiguous rows: one work item per output row, the inner loop runs over contiguous memory
  threader->ParallelizeArray(
    0,
    outer * rows,
    [&](SizeValueType item) {
      const SizeValueType o = item / rows;
      const SizeValueType i = item % rows;
      TOut *              result = target + (o * rows + i) * inner;
      for (SizeValueType k = matrix.Start[i]; k < matrix.Start[i + 1]; ++k)
      {
        const TOut  weight = static_cast<TOut>(matrix.Weight[k]);
        const TIn * line = source + (o * length + matrix.Index[k]) * inner;
        for (SizeValueType j = 0; j < inner; ++j)
        {
          result[j] += weight * static_cast<TOut>(line[j]);
        }
      }
    },
    nullptr);
}


/** \class SUITSBSplineGrid
 * \brief A cubic B-spline control grid over an image, sampled at one working level.
 *
 * A control grid with spacing \f$s\f$ (in voxels of the full-resolution image) places control
 * point \f$k\f$ of an axis at voxel coordinate \f$(k - 1) s\f$: one point before the image, and
 * \f$\lfloor (n - 1) / s \rfloor + 4\f$ points in all, so that every voxel has its four
 * supporting points. The field is the tensor product of one exact 1-D basis matrix per axis,
 * valid for any (non-integer) spacing and for any sampling of the image extent: a working
 * level of \f$m\f$ voxels samples the positions \f$i (n - 1) / (m - 1)\f$ of the same extent
 * (corner-aligned). The transposed matrices give the adjoint.
 *
 * Arrays are in ITK index order (axis 0, x, varies fastest). Coefficient arrays hold
 * VDimension blocks (components x, y[, z]) of the control grid; field arrays VDimension blocks
 * of the working level. Coefficients and fields are in full-resolution voxels.
 *
 * \ingroup SUITS
 */
template <unsigned int VDimension>
class SUITSBSplineGrid
{
public:
  using SizeType = std::array<SizeValueType, VDimension>;
  using SpacingType = std::array<double, VDimension>;

  /** \param imageSize full-resolution image size in voxels (x, y[, z]);
   * \param spacing control-point spacing in full-resolution voxels per axis;
   * \param levelSize working level size in voxels per axis (the full resolution when equal
   * to imageSize). */
  SUITSBSplineGrid(const SizeType & imageSize, const SpacingType & spacing, const SizeType & levelSize)
    : m_ImageSize(imageSize)
    , m_Spacing(spacing)
    , m_LevelSize(levelSize)
  {
    m_Support = 1.0;
    for (unsigned int a = 0; a < VDimension; ++a)
    {
      m_GridSize[a] = static_cast<SizeValueType>(std::floor((imageSize[a] - 1) / spacing[a])) + 4;
      m_Basis[a] = BasisMatrix(imageSize[a], levelSize[a], spacing[a], m_GridSize[a]);
      m_Transposed[a] = m_Basis[a].Transposed();
      m_Support *= m_Basis[a].LargestColumnSum();
    }
  }

  /** Control points per axis. */
  const SizeType &
  GetGridSize() const
  {
    return m_GridSize;
  }

  /** Number of control points. */
  SizeValueType
  GetNumberOfControlPoints() const
  {
    SizeValueType count = 1;
    for (auto n : m_GridSize)
    {
      count *= n;
    }
    return count;
  }

  const SpacingType &
  GetSpacing() const
  {
    return m_Spacing;
  }

  const SizeType &
  GetLevelSize() const
  {
    return m_LevelSize;
  }

  /** The largest summed weight of one control point over the working level (the product over
   * axes of the largest column sums of the basis matrices). */
  double
  GetSupport() const
  {
    return m_Support;
  }

  /** The dense field at the working level from control coefficients. */
  template <typename TField>
  void
  Dense(const std::vector<double> & coefficients, std::vector<TField> & field, MultiThreaderBase * threader) const
  {
    Apply(coefficients, m_GridSize, m_Basis, field, threader);
  }

  /** The adjoint of Dense(): working-level field to control-grid coefficients. */
  template <typename TField>
  void
  Adjoint(const std::vector<TField> & field, std::vector<double> & coefficients, MultiThreaderBase * threader) const
  {
    Apply(field, m_LevelSize, m_Transposed, coefficients, threader);
  }

  /** This grid sampled at a strided lattice of its working level: the voxels offsets[a] +
   * j strides[a] along each axis a (offsets below the strides). Its level is the lattice; its
   * basis matrices are the lattice's rows of this grid's, and its support is over the lattice. */
  SUITSBSplineGrid
  Lattice(const SizeType & offsets, const SizeType & strides) const
  {
    SUITSBSplineGrid lattice(*this);
    lattice.m_Support = 1.0;
    for (unsigned int a = 0; a < VDimension; ++a)
    {
      SUITSSparseAxisMatrix & rows = lattice.m_Basis[a];
      rows = SUITSSparseAxisMatrix();
      rows.Columns = m_GridSize[a];
      for (SizeValueType i = offsets[a]; i < m_LevelSize[a]; i += strides[a])
      {
        for (SizeValueType k = m_Basis[a].Start[i]; k < m_Basis[a].Start[i + 1]; ++k)
        {
          rows.Index.push_back(m_Basis[a].Index[k]);
          rows.Weight.push_back(m_Basis[a].Weight[k]);
        }
        rows.Start.push_back(rows.Index.size());
        ++rows.Rows;
      }
      lattice.m_LevelSize[a] = rows.Rows;
      lattice.m_Transposed[a] = rows.Transposed();
      lattice.m_Support *= rows.LargestColumnSum();
    }
    return lattice;
  }

  /** Coefficients of \p finer whose field best fits (least squares over the full-resolution
   * voxels, exact when this spacing is an integer multiple of the finer one) this grid's field
   * of \p coefficients. */
  std::vector<double>
  Refine(const std::vector<double> & coefficients, const SUITSBSplineGrid & finer, MultiThreaderBase * threader) const
  {
    std::array<SUITSSparseAxisMatrix, VDimension> maps;
    for (unsigned int a = 0; a < VDimension; ++a)
    {
      const SizeValueType n = m_ImageSize[a];
      const vnl_matrix<double> coarse = ToDense(BasisMatrix(n, n, m_Spacing[a], m_GridSize[a]));
      const vnl_matrix<double> fine = ToDense(BasisMatrix(n, n, finer.m_Spacing[a], finer.m_GridSize[a]));
      // pseudo-inverse with singular values below 1e-12 of the largest treated as zero (control
      // points at the very edge of the support carry no weight on any voxel)
      const vnl_matrix<double>   refine = vnl_svd<double>(fine, -1e-12).pinverse() * coarse;
      SUITSSparseAxisMatrix &    map = maps[a];
      map.Rows = refine.rows();
      map.Columns = refine.cols();
      for (unsigned int i = 0; i < refine.rows(); ++i)
      {
        for (unsigned int j = 0; j < refine.cols(); ++j)
        {
          map.Index.push_back(j);
          map.Weight.push_back(refine(i, j));
        }
        map.Start.push_back(map.Index.size());
      }
    }
    std::vector<double> refined;
    Apply(coefficients, m_GridSize, maps, refined, threader);
    return refined;
  }

  /** The cubic B-spline basis matrix of one axis: \p points control points of spacing \p spacing
   * at \p samples positions evenly spanning [0, size - 1]. Row i holds the (at most four)
   * non-zero weights \f$B_3(x_i / s - (k - 1))\f$. */
  static SUITSSparseAxisMatrix
  BasisMatrix(SizeValueType size, SizeValueType samples, double spacing, SizeValueType points)
  {
    SUITSSparseAxisMatrix matrix;
    matrix.Rows = samples;
    matrix.Columns = points;
    const double step = samples > 1 ? static_cast<double>(size - 1) / static_cast<double>(samples - 1) : 0.0;
    for (SizeValueType i = 0; i < samples; ++i)
    {
      const double       position = static_cast<double>(i) * step / spacing;
      const long long    first = static_cast<long long>(std::floor(position)) - 1; // t < 2 from here on
      for (long long k = std::max(0LL, first + 1); k <= first + 4 && k < static_cast<long long>(points); ++k)
      {
        const double weight = CubicBSpline(position - static_cast<double>(k - 1));
        if (weight != 0.0)
        {
          matrix.Index.push_back(static_cast<SizeValueType>(k));
          matrix.Weight.push_back(weight);
        }
      }
      matrix.Start.push_back(matrix.Index.size());
    }
    return matrix;
  }

  /** The cardinal cubic B-spline \f$B_3(t)\f$: support \f$|t| < 2\f$, integer translates sum to one. */
  static double
  CubicBSpline(double t)
  {
    const double a = std::abs(t);
    if (a < 1.0)
    {
      return (4.0 - 6.0 * a * a + 3.0 * a * a * a) / 6.0;
    }
    const double b = std::max(0.0, 2.0 - a);
    return b * b * b / 6.0;
  }

private:
  /** Apply one matrix per axis to VDimension blocks of an array of \p shape. */
  template <typename TIn, typename TOut>
  static void
  Apply(const std::vector<TIn> &                                 in,
        SizeType                                                 shape,
        const std::array<SUITSSparseAxisMatrix, VDimension> &    matrices,
        std::vector<TOut> &                                      out,
        MultiThreaderBase *                                      threader)
  {
    std::vector<TOut> current(in.begin(), in.end());
    std::vector<TOut> next;
    for (unsigned int a = 0; a < VDimension; ++a)
    {
      SUITSApplyAlongAxis<TOut, TOut, VDimension>(current, shape, VDimension, a, matrices[a], next, threader);
      shape[a] = matrices[a].Rows;
      current.swap(next);
    }
    out.swap(current);
  }

  static vnl_matrix<double>
  ToDense(const SUITSSparseAxisMatrix & matrix)
  {
    vnl_matrix<double> dense(matrix.Rows, matrix.Columns, 0.0);
    for (SizeValueType i = 0; i < matrix.Rows; ++i)
    {
      for (SizeValueType k = matrix.Start[i]; k < matrix.Start[i + 1]; ++k)
      {
        dense(i, matrix.Index[k]) = matrix.Weight[k];
      }
    }
    return dense;
  }

  SizeType                                      m_ImageSize;
  SpacingType                                   m_Spacing;
  SizeType                                      m_LevelSize;
  SizeType                                      m_GridSize;
  std::array<SUITSSparseAxisMatrix, VDimension> m_Basis;
  std::array<SUITSSparseAxisMatrix, VDimension> m_Transposed;
  double                                        m_Support{ 1.0 };
};

} // end namespace itk

#endif
