//! The units a model works in, against the data's own.
//!
//! ```text
//! x_model = (x_data - shift) / scale,      x_data = shift + scale x_model
//! ```
//!
//! The noise e ~ N(0, I) of z = (1 - t) x + t e is in model units, so data whose values span a
//! range far from [-1, 1] (the digits' pixels, 0..16) are mapped there for training and every
//! sample is mapped back: files, pictures and metrics stay in the data's own scale.

use ndarray::{Array2, ArrayView2};

/// x_model = (x_data - shift) / scale, the same for every column; scale > 0.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataUnits {
    pub shift: f64,
    pub scale: f64,
}

impl DataUnits {
    /// The identity: the model works in the data's units.
    pub const IDENTITY: DataUnits = DataUnits {
        shift: 0.0,
        scale: 1.0,
    };

    /// (x - shift) / scale, elementwise.
    pub fn to_model(&self, data: ArrayView2<f64>) -> Array2<f64> {
        data.mapv(|x| (x - self.shift) / self.scale)
    }

    /// shift + scale x, elementwise.
    pub fn to_data(&self, model: ArrayView2<f64>) -> Array2<f64> {
        model.mapv(|x| self.data_value(x))
    }

    /// shift + scale x: one value from the model's units to the data's.
    pub fn data_value(&self, x: f64) -> f64 {
        self.shift + self.scale * x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn the_two_maps_are_inverse_and_map_the_digits_range_to_plus_minus_one() {
        let units = DataUnits {
            shift: 8.0,
            scale: 8.0,
        };
        let data = array![[0.0, 8.0, 16.0]];
        let model = units.to_model(data.view());
        assert_eq!(model, array![[-1.0, 0.0, 1.0]]);
        assert_eq!(units.to_data(model.view()), data);
        assert_eq!(DataUnits::IDENTITY.to_data(model.view()), model);
    }
}
