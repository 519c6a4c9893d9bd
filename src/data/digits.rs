//! The built-in labelled dataset: the 1797 8x8 handwritten digits of the UCI "Optical Recognition
//! of Handwritten Digits" test set (E. Alpaydin and C. Kaynak, 1998, CC BY 4.0), as scikit-learn
//! ships them. The gzip file is compiled in from src/data/digits/ (its README.md has the origin and
//! licence) and decompressed with `flate2`.

use super::labelled::parse_labelled;
use super::{Bounds, DataUnits, LabelledData};
use crate::rng::Rng;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

/// src/data/digits/digits.csv.gz, byte for byte as scikit-learn ships it.
static DIGITS_CSV_GZ: &[u8] = include_bytes!("digits/digits.csv.gz");

/// The number of images in [`digits`].
pub const DIGITS_ROWS: usize = 1797;
/// The dimension of a digit: 8 x 8 pixels.
pub const DIGITS_DIM: usize = 64;
/// The number of classes of [`digits`]: the digits 0 to 9.
pub const DIGITS_CLASSES: usize = 10;
/// The held-out rows of each class in [`digits_split`]: 30, so 300 held-out rows and 1497
/// training rows.
pub const DIGITS_HELD_OUT_PER_CLASS: usize = 30;
/// The seed of [`digits_split`]'s permutation (`Rng::seed_from_u64`), fixed for good: changing it
/// changes which rows every run trains and evaluates on.
pub const DIGITS_SPLIT_SEED: u64 = 1998;
/// The units a model of the digits works in: pixels 0..16 map to [-1, 1], x = (p - 8) / 8, the
/// same map on every pixel.
pub fn digits_units() -> DataUnits {
    DataUnits::uniform(DIGITS_DIM, 8.0, 8.0)
}

/// The 1797 handwritten digits: [`DIGITS_DIM`] = 64 columns, the pixels of an 8x8 image in
/// row-major order (top row first), each an integer from 0 (white) to 16 (black), the count of set
/// pixels in a 4x4 block of a 32x32 bitmap; labels 0 to 9, the digit; `classes` = 10. Rows are in
/// the file's order. Decompressed and parsed once per process (a few milliseconds), then cloned
/// (about 1 MB).
///
/// Data set: "Optical Recognition of Handwritten Digits", E. Alpaydin and C. Kaynak, 1998, UCI
/// Machine Learning Repository, CC BY 4.0; the copy scikit-learn ships (`load_digits`).
pub fn digits() -> LabelledData {
    static DIGITS: OnceLock<LabelledData> = OnceLock::new();
    DIGITS.get_or_init(decode_digits).clone()
}

/// The embedded file, decompressed and read by the CSV reader with its last column as the label.
/// The tests check that it decodes to what [`digits`] says, so a failure here is a broken build,
/// not bad input.
fn decode_digits() -> LabelledData {
    let mut text = Vec::with_capacity(1 << 19);
    GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_end(&mut text)
        .expect("the embedded digits.csv.gz decompresses");
    parse_labelled(Path::new("digits.csv"), &text, -1, &Bounds::NONE)
        .expect("the embedded digits.csv.gz is a labelled CSV table")
}

/// The rows of [`digits`] in each part of [`digits_split`], as (training rows, held-out rows),
/// each in increasing order; together they are every row once.
///
/// Stratified by class: a permutation of all rows from `Rng::seed_from_u64(DIGITS_SPLIT_SEED)` is
/// walked in order, and a row is held out while its class has fewer than
/// [`DIGITS_HELD_OUT_PER_CLASS`] held-out rows; every other row is for training.
pub fn digits_split_rows() -> (Vec<usize>, Vec<usize>) {
    let labels = digits().labels;
    let mut held_per_class = [0usize; DIGITS_CLASSES];
    let mut held_out = vec![false; labels.len()];
    for row in Rng::seed_from_u64(DIGITS_SPLIT_SEED).permutation(labels.len()) {
        let class = labels[row];
        if held_per_class[class] < DIGITS_HELD_OUT_PER_CLASS {
            held_per_class[class] += 1;
            held_out[row] = true;
        }
    }
    (0..labels.len()).partition(|&row| !held_out[row])
}

/// [`digits`] split once and for all into training and held-out parts, (train, held-out): 1497
/// and 300 rows, 30 of each class held out ([`digits_split_rows`] says which). Both parts have
/// `classes` = 10 and keep the file's row order.
pub fn digits_split() -> (LabelledData, LabelledData) {
    let all = digits();
    let (train, held_out) = digits_split_rows();
    (all.select(&train), all.select(&held_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The images per class, counted once from the file (`zcat | cut -d, -f65 | sort | uniq -c`).
    const CLASS_COUNTS: [usize; 10] = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180];

    #[test]
    fn the_embedded_file_is_sklearns() {
        assert_eq!(DIGITS_CSV_GZ.len(), 57_523);
        // Gzip magic and deflate method.
        assert_eq!(&DIGITS_CSV_GZ[..3], &[0x1f, 0x8b, 8]);
    }

    #[test]
    fn shape_values_and_class_counts() {
        let d = digits();
        assert_eq!(d.points.dim(), (DIGITS_ROWS, DIGITS_DIM));
        assert_eq!(d.labels.len(), DIGITS_ROWS);
        assert_eq!(d.classes, DIGITS_CLASSES);
        assert!(d
            .points
            .iter()
            .all(|&v| v.fract() == 0.0 && (0.0..=16.0).contains(&v)));
        // Both ends of the range occur.
        assert!(d.points.iter().any(|&v| v == 0.0));
        assert!(d.points.iter().any(|&v| v == 16.0));
        assert_eq!(d.class_counts(), CLASS_COUNTS);
        // The first and last rows, as in the file (sklearn's `load_digits().data[0]` is a 0).
        assert_eq!(d.labels[0], 0);
        assert_eq!(
            d.points.row(0).iter().take(16).copied().collect::<Vec<_>>(),
            [0., 0., 5., 13., 9., 1., 0., 0., 0., 0., 13., 15., 10., 15., 5., 0.]
        );
        assert_eq!(d.labels[DIGITS_ROWS - 1], 8);
        assert_eq!(d.points[[DIGITS_ROWS - 1, 63]], 0.0);
        assert_eq!(d.points[[DIGITS_ROWS - 1, 58]], 8.0);
        assert_eq!(d.points[[DIGITS_ROWS - 1, 60]], 14.0);
        // Cached: the same values every call.
        assert_eq!(digits(), d);
    }

    #[test]
    fn the_split_is_stratified_disjoint_complete_and_fixed() {
        let (train_rows, held_rows) = digits_split_rows();
        assert_eq!((train_rows.len(), held_rows.len()), (1497, 300));
        let mut seen = vec![0u8; DIGITS_ROWS];
        for &r in train_rows.iter().chain(&held_rows) {
            seen[r] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1), "not a partition of the rows");
        assert!(train_rows.windows(2).all(|w| w[0] < w[1]));
        assert!(held_rows.windows(2).all(|w| w[0] < w[1]));

        let (train, held) = digits_split();
        let all = digits();
        assert_eq!(train, all.select(&train_rows));
        assert_eq!(held, all.select(&held_rows));
        assert_eq!((train.classes, held.classes), (10, 10));
        assert_eq!(held.class_counts(), vec![DIGITS_HELD_OUT_PER_CLASS; 10]);
        let train_counts: Vec<usize> = CLASS_COUNTS.iter().map(|c| c - 30).collect();
        assert_eq!(train.class_counts(), train_counts);

        // Deterministic: the same rows every call, and pinned, so that a change of the seed, of
        // the permutation or of the walk shows here.
        assert_eq!(digits_split_rows(), (train_rows, held_rows.clone()));
        assert_eq!(&held_rows[..8], PINNED_FIRST_HELD_OUT);
    }

    /// The first held-out rows of the fixed split.
    const PINNED_FIRST_HELD_OUT: &[usize] = &[0, 2, 14, 17, 20, 22, 31, 46];
}
