//! The units a model works in, against the data's own, column by column.
//!
//! ```text
//! x_model[j] = (x_data[j] - shift[j]) / scale[j],      x_data[j] = shift[j] + scale[j] x_model[j]
//! ```
//!
//! The noise e ~ N(0, I) of z = (1 - t) x + t e is in model units, so data whose columns span
//! ranges far from N(0, 1) (the digits' pixels, 0..16; a table whose columns run from 0.1 to 1000)
//! are mapped there for training and every sample is mapped back: files, pictures and metrics stay
//! in the data's own scale. A user's file is standardised ([`DataUnits::standardizing`]: each
//! column's mean and standard deviation over the training pool); the digits share one map,
//! (p - 8) / 8, so that a pixel keeps its meaning in every column.

use ndarray::{Array2, ArrayView2, Axis};

/// x_model = (x_data - shift) / scale, per column; every scale finite and > 0.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataUnits {
    pub shift: Vec<f64>,
    pub scale: Vec<f64>,
}

impl DataUnits {
    /// The identity on `dim` columns: the model works in the data's units.
    pub fn identity(dim: usize) -> Self {
        DataUnits::uniform(dim, 0.0, 1.0)
    }

    /// The same map (x - shift) / scale on each of `dim` columns.
    pub fn uniform(dim: usize, shift: f64, scale: f64) -> Self {
        DataUnits {
            shift: vec![shift; dim],
            scale: vec![scale; dim],
        }
    }

    /// Standardisation by the columns of `pool`: shift = the column's mean, scale = its standard
    /// deviation (population, 1/n), or 1 for a column whose deviation is 0 (a constant column
    /// is only shifted). With no rows, the identity.
    pub fn standardizing(pool: ArrayView2<f64>) -> Self {
        let dim = pool.ncols();
        if pool.nrows() == 0 {
            return DataUnits::identity(dim);
        }
        let n = pool.nrows() as f64;
        let shift: Vec<f64> = pool.sum_axis(Axis(0)).iter().map(|s| s / n).collect();
        let scale = pool
            .axis_iter(Axis(1))
            .zip(&shift)
            .map(|(column, &mean)| {
                // Centred first, so that a large mean costs no precision.
                let variance = column.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                let sd = variance.sqrt();
                if sd > 0.0 && sd.is_finite() {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        DataUnits { shift, scale }
    }

    /// The number of columns.
    pub fn dim(&self) -> usize {
        self.shift.len()
    }

    /// Whether the map is the identity (shift 0, scale 1 on every column).
    pub fn is_identity(&self) -> bool {
        self.shift.iter().all(|&s| s == 0.0) && self.scale.iter().all(|&s| s == 1.0)
    }

    /// Checks a map read from a file against the model's dimension; the message names the problem.
    pub fn validate(&self, dim: usize) -> Result<(), String> {
        if self.shift.len() != dim || self.scale.len() != dim {
            return Err(format!(
                "units: {} shifts and {} scales for {dim} columns",
                self.shift.len(),
                self.scale.len()
            ));
        }
        if let Some((j, s)) = self.shift.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(format!("units: shift {s} of column {j} is not finite"));
        }
        if let Some((j, s)) = self
            .scale
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(format!(
                "units: scale {s} of column {j} is not finite and > 0"
            ));
        }
        Ok(())
    }

    /// (x - shift) / scale, column by column.
    pub fn to_model(&self, data: ArrayView2<f64>) -> Array2<f64> {
        self.check_columns(data.ncols());
        let mut out = data.to_owned();
        for (mut column, (&shift, &scale)) in out
            .axis_iter_mut(Axis(1))
            .zip(self.shift.iter().zip(&self.scale))
        {
            column.mapv_inplace(|x| (x - shift) / scale);
        }
        out
    }

    /// shift + scale x, column by column.
    pub fn to_data(&self, model: ArrayView2<f64>) -> Array2<f64> {
        self.check_columns(model.ncols());
        let mut out = model.to_owned();
        for (mut column, (&shift, &scale)) in out
            .axis_iter_mut(Axis(1))
            .zip(self.shift.iter().zip(&self.scale))
        {
            column.mapv_inplace(|x| shift + scale * x);
        }
        out
    }

    fn check_columns(&self, cols: usize) {
        assert_eq!(
            cols,
            self.dim(),
            "DataUnits: points of {cols} columns for units of {} columns",
            self.dim()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn the_two_maps_are_inverse_and_map_the_digits_range_to_plus_minus_one() {
        let units = DataUnits::uniform(3, 8.0, 8.0);
        let data = array![[0.0, 8.0, 16.0]];
        let model = units.to_model(data.view());
        assert_eq!(model, array![[-1.0, 0.0, 1.0]]);
        assert_eq!(units.to_data(model.view()), data);
        assert_eq!(DataUnits::identity(3).to_data(model.view()), model);
    }

    #[test]
    fn standardizing_gives_each_column_mean_zero_and_deviation_one() {
        // Columns of scales 0.1, 1000 and a constant one.
        let data = array![[0.1, 1000.0, 5.0], [0.3, 3000.0, 5.0], [0.2, 2000.0, 5.0]];
        let units = DataUnits::standardizing(data.view());
        let model = units.to_model(data.view());
        for j in 0..2 {
            let column = model.column(j);
            let mean = column.sum() / 3.0;
            let var = column.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0;
            assert!(mean.abs() < 1e-12, "column {j}: mean {mean}");
            assert!((var - 1.0).abs() < 1e-12, "column {j}: variance {var}");
        }
        assert_eq!(units.scale[2], 1.0, "a constant column keeps scale 1");
        assert_eq!(model.column(2), array![0.0, 0.0, 0.0]);
        let back = units.to_data(model.view());
        assert!(back
            .iter()
            .zip(data.iter())
            .all(|(a, b)| (a - b).abs() <= 1e-12 * b.abs()));
    }

    #[test]
    fn validate_names_a_bad_scale_and_a_wrong_length() {
        assert!(DataUnits::identity(2).validate(2).is_ok());
        let e = DataUnits::identity(2).validate(3).unwrap_err();
        assert!(e.contains("for 3 columns"), "{e}");
        let mut units = DataUnits::identity(2);
        units.scale[1] = 0.0;
        let e = units.validate(2).unwrap_err();
        assert!(e.contains("scale 0 of column 1"), "{e}");
    }
}
