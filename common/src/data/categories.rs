//! Text-valued columns (categorical features) and text labels (class names), as codes.
//!
//! A column of a table that holds any value other than a number or a missing marker is
//! categorical: its values are category names, numbers among them included, and each row holds
//! the code of its name (the name's place in the sorted list of the train channel's names), which
//! XGBoost takes as a category and the linear model and k-NN one-hot encode. A label column
//! with text in it holds class names the same way. A number in a categorical column is known by
//! its shortest float32 form, so `1.50` and `1.5` are one category, in training and requests.
//!
//! At serving, a name the train channel never held is a missing value, marked [`UNSEEN`] so
//! that the out-of-range flag and the log can tell it from a value that was not given.

use std::borrow::Cow;
use std::collections::HashMap;

/// The bits of [`UNSEEN`].
const UNSEEN_BITS: u32 = 0x7fc0_5eed;

/// A category training never saw: a NaN, so missing to every model, told apart by its bits.
pub const UNSEEN: f32 = f32::from_bits(UNSEEN_BITS);

/// Whether `v` is [`UNSEEN`] (not any other NaN).
pub fn is_unseen(v: f32) -> bool {
    v.to_bits() == UNSEEN_BITS
}

/// Most categories one column (or classes one label) may have: more is an identifier or free
/// text, not a category.
pub const MAX_CATEGORIES: usize = 10_000;

/// Texts that stand for a missing value, as pandas' `read_csv` reads them by default.
const MISSING_MARKERS: [&str; 18] = [
    "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// Whether an (unquoted) field stands for a missing value: empty, or a marker pandas reads as
/// one (`NA`, `NaN`, `null`, `None`, `N/A`, ...).
pub fn is_missing(text: &str) -> bool {
    text.is_empty() || MISSING_MARKERS.contains(&text)
}

/// The name a number has in a categorical column: its shortest float32 form.
pub fn number_name(v: f32) -> String {
    v.to_string()
}

/// The name a field's (unquoted) text has in a categorical column: a number's shortest float32
/// form, else the text itself.
pub fn name_of(text: &str) -> Cow<'_, str> {
    match super::number::parse(text) {
        Ok(v) => Cow::Owned(number_name(v as f32)),
        Err(_) => Cow::Borrowed(text),
    }
}

/// Up to ten names, quoted and joined, for messages ("'a', 'b' and 3 more").
pub fn shown(names: &[String]) -> String {
    let mut out: Vec<String> = names.iter().take(10).map(|n| format!("'{n}'")).collect();
    if names.len() > 10 {
        out.push(format!("and {} more", names.len() - 10));
    }
    out.join(", ")
}

/// The names of one column's categories (or a label's classes), in code order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Categories {
    names: Vec<String>,
    codes: HashMap<String, u32>,
}

impl Categories {
    /// Categories with codes in the order of `names`.
    pub fn new(names: Vec<String>) -> Self {
        let codes = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Self { names, codes }
    }

    /// The names, in code order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The code of a name ([`name_of`] a field's text).
    pub fn code(&self, name: &str) -> Option<u32> {
        self.codes.get(name).copied()
    }

    /// The value a field's text has in this column: its code, missing for a missing marker,
    /// [`UNSEEN`] for a name training did not see.
    pub fn value_of_text(&self, text: &str) -> f32 {
        if is_missing(text) {
            return f32::NAN;
        }
        self.code(&name_of(text)).map_or(UNSEEN, |c| c as f32)
    }

    /// The value a number has in this column.
    pub fn value_of_number(&self, v: f32) -> f32 {
        self.code(&number_name(v)).map_or(UNSEEN, |c| c as f32)
    }
}

/// One column's categories while the train channel is read: codes in order of first sight,
/// sorted by [`CategoryBuilder::finish`]. Rows before `since_row` were read while the column
/// still looked numeric, so they hold numbers (or NaN).
#[derive(Debug, Clone)]
pub struct CategoryBuilder {
    since_row: usize,
    seen: Categories,
    /// Values that were numbers, that were text, and text that is a number with a decimal
    /// comma.
    numbers: usize,
    texts: usize,
    decimal_commas: usize,
    /// Whether more names came than [`MAX_CATEGORIES`] (the later ones are not kept).
    too_many: bool,
    /// The first text value and where it was read.
    first_text: Option<(String, String)>,
}

/// Why a column's values are not categories.
#[derive(Debug, Clone, PartialEq)]
pub enum NotCategories {
    /// More names than [`MAX_CATEGORIES`]: an identifier or free text.
    TooMany,
    /// Numbers written with a decimal comma (`2,5`): a numeric column in a locale's format.
    DecimalCommas {
        /// The first such value, and where it was read.
        first: (String, String),
    },
    /// Mostly numbers, with some text: a numeric column with bad values.
    MostlyNumbers {
        /// How many values were numbers.
        numbers: usize,
        /// How many were text.
        texts: usize,
        /// The first text value, and where it was read.
        first: (String, String),
    },
}

impl CategoryBuilder {
    /// A builder for a column that turned out to hold text at row `since_row`.
    pub fn new(since_row: usize) -> Self {
        Self {
            since_row,
            seen: Categories::default(),
            numbers: 0,
            texts: 0,
            decimal_commas: 0,
            too_many: false,
            first_text: None,
        }
    }

    /// The code (in order of first sight) of a name, added if new.
    pub fn code(&mut self, name: &str) -> u32 {
        if let Some(c) = self.seen.code(name) {
            return c;
        }
        if self.seen.len() >= MAX_CATEGORIES {
            // An identifier column: counted as such, its names not kept.
            self.too_many = true;
            return 0;
        }
        let c = self.seen.names.len() as u32;
        self.seen.names.push(name.to_owned());
        self.seen.codes.insert(name.to_owned(), c);
        c
    }

    /// The value a field's text has while building: its code, or NaN for a missing marker.
    /// `at` says where the field was read (kept for the first text, for messages).
    pub fn value_of_text(&mut self, text: &str, at: impl FnOnce() -> String) -> f32 {
        if is_missing(text) {
            return f32::NAN;
        }
        match super::number::parse(text) {
            Ok(v) => {
                self.numbers += 1;
                self.code(&number_name(v as f32)) as f32
            }
            Err(_) => {
                self.texts += 1;
                if text.contains(',') && text.replacen(',', ".", 1).parse::<f64>().is_ok() {
                    self.decimal_commas += 1;
                }
                if self.first_text.is_none() {
                    self.first_text = Some((text.chars().take(40).collect(), at()));
                }
                self.code(text) as f32
            }
        }
    }

    /// Rewrites the column (`values`, one per row in row order) to codes of the sorted names,
    /// and returns the categories. A column of more than [`MAX_CATEGORIES`] names, or of more
    /// numbers than text, is not categorical.
    pub fn finish<'a>(
        mut self,
        values: impl Iterator<Item = &'a mut f32>,
    ) -> Result<Categories, NotCategories> {
        let mut values: Vec<&mut f32> = values.collect();
        // The rows read before the column was known to be text hold numbers: name them.
        for v in values.iter_mut().take(self.since_row) {
            if !v.is_nan() {
                self.numbers += 1;
                **v = self.code(&number_name(**v)) as f32;
            }
        }
        if self.texts > 0 && self.decimal_commas == self.texts {
            return Err(NotCategories::DecimalCommas {
                first: self.first_text.take().unwrap_or_default(),
            });
        }
        if self.numbers > self.texts {
            return Err(NotCategories::MostlyNumbers {
                numbers: self.numbers,
                texts: self.texts,
                first: self.first_text.take().unwrap_or_default(),
            });
        }
        if self.too_many {
            return Err(NotCategories::TooMany);
        }
        let mut order: Vec<u32> = (0..self.seen.len() as u32).collect();
        order.sort_by(|&a, &b| self.seen.names[a as usize].cmp(&self.seen.names[b as usize]));
        let mut sorted_code = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            sorted_code[old as usize] = new as u32;
        }
        for v in values {
            if !v.is_nan() {
                *v = sorted_code.get(*v as usize).map_or(f32::NAN, |&c| c as f32);
            }
        }
        let names = order
            .into_iter()
            .map(|c| std::mem::take(&mut self.seen.names[c as usize]))
            .collect();
        Ok(Categories::new(names))
    }
}

/// The text columns of a table: each feature's categories (none for a numeric one) and the
/// label's classes when the labels are text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoding {
    /// Per feature, its categories; shorter than the features when the last ones are numeric.
    pub features: Vec<Option<Categories>>,
    /// The class names, when the labels are text.
    pub classes: Option<Categories>,
}

impl Encoding {
    /// Feature `k`'s categories, when it is categorical.
    pub fn feature(&self, k: usize) -> Option<&Categories> {
        self.features.get(k).and_then(Option::as_ref)
    }

    /// Whether any feature is categorical.
    pub fn has_categorical(&self) -> bool {
        self.features.iter().any(Option::is_some)
    }

    /// Per feature of `width`, its number of categories (0 for a numeric feature).
    pub fn cardinalities(&self, width: usize) -> Vec<usize> {
        (0..width)
            .map(|k| self.feature(k).map_or(0, Categories::len))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_missing_markers() {
        assert_eq!(name_of("1.50"), "1.5");
        assert_eq!(name_of("NEAR BAY"), "NEAR BAY");
        assert!(is_missing("") && is_missing("NA") && is_missing("null") && !is_missing("?"));
        let c = Categories::new(vec!["1.5".into(), "a".into()]);
        assert_eq!(c.value_of_text("1.5000"), 0.0);
        assert_eq!(c.value_of_number(1.5), 0.0);
        assert_eq!(c.value_of_text("a"), 1.0);
        assert!(is_unseen(c.value_of_text("b")));
        let missing = c.value_of_text("NaN");
        assert!(missing.is_nan() && !is_unseen(missing));
    }

    /// A builder fed far more names than it keeps stays at the cap.
    fn b_len_is_bounded() -> bool {
        let mut b = CategoryBuilder::new(0);
        for i in 0..3 * MAX_CATEGORIES {
            b.value_of_text(&format!("id{i}"), String::new);
        }
        b.seen.len() == MAX_CATEGORIES
    }

    #[test]
    fn decimal_commas_are_numbers_in_the_wrong_format() {
        let mut b = CategoryBuilder::new(0);
        let mut column = [
            b.value_of_text("2,5", || "f line 1".into()),
            b.value_of_text("3,75", || "f line 2".into()),
        ];
        assert_eq!(
            b.finish(column.iter_mut()),
            Err(NotCategories::DecimalCommas {
                first: ("2,5".into(), "f line 1".into())
            })
        );
    }

    #[test]
    fn a_builder_names_earlier_numbers_and_sorts() {
        // Rows 0 and 1 were read as numbers; from row 2 the column held text.
        let at = || "f line 3".to_owned();
        let mut b = CategoryBuilder::new(2);
        let mut column = vec![3.0, f32::NAN];
        column.push(b.value_of_text("zebra", at));
        column.push(b.value_of_text("3", at));
        column.push(b.value_of_text("apple", at));
        let c = b.finish(column.iter_mut()).unwrap();
        assert_eq!(c.names(), ["3", "apple", "zebra"]);
        assert_eq!(column[0], 0.0);
        assert!(column[1].is_nan());
        assert_eq!(&column[2..], [2.0, 0.0, 1.0]);
        // Too many names is an identifier column.
        let mut b = CategoryBuilder::new(0);
        let mut column: Vec<f32> = (0..=MAX_CATEGORIES)
            .map(|i| b.value_of_text(&format!("id{i}"), at))
            .collect();
        assert_eq!(b.finish(column.iter_mut()), Err(NotCategories::TooMany));
        assert!(b_len_is_bounded());
        // More numbers than text is a numeric column with bad values.
        let mut b = CategoryBuilder::new(2);
        let mut column = [1.0, 2.0, b.value_of_text("oops", at)];
        assert_eq!(
            b.finish(column.iter_mut()),
            Err(NotCategories::MostlyNumbers {
                numbers: 2,
                texts: 1,
                first: ("oops".into(), "f line 3".into())
            })
        );
    }
}
