//! Command-line names of enums: one macro instead of a `name` / `Display` / `FromStr` triple
//! written out per enum, and one that stores a type in JSON by that same name.

/// For an enum of unit variants, each with its command-line name:
/// `NAMES` (in declaration order), `name()`, `Display` (the name) and `FromStr` (the inverse),
/// whose error lists the names: `unknown WHAT 'x' (expected 'a', 'b' or 'c')`.
#[macro_export]
macro_rules! named_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name used in configs and on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "unknown {} '{}' (expected {})",
                        $what,
                        s,
                        $crate::names::alternatives(Self::NAMES)
                    )),
                }
            }
        }

        $crate::serde_by_name!($ty);
    };
}

/// Serde for a type that has a `Display` name and its `FromStr` inverse: stored in JSON as that
/// name (`"silu"`, `"fourier:16"`), so configs read like the command line, and a bad name fails
/// with the `FromStr` message.
#[macro_export]
macro_rules! serde_by_name {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`: the names a value may take, for an error message.
pub fn alternatives(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Fruit {
        Apple,
        Pear,
        Plum,
    }
    crate::named_enum!(Fruit, "fruit", { Apple => "apple", Pear => "pear", Plum => "plum" });

    #[test]
    fn names_round_trip_and_errors_list_them() {
        for (f, n) in [
            (Fruit::Apple, "apple"),
            (Fruit::Pear, "pear"),
            (Fruit::Plum, "plum"),
        ] {
            assert_eq!(f.name(), n);
            assert_eq!(f.to_string(), n);
            assert_eq!(n.parse::<Fruit>(), Ok(f));
        }
        assert_eq!(Fruit::NAMES, ["apple", "pear", "plum"]);
        assert_eq!(
            "fig".parse::<Fruit>(),
            Err("unknown fruit 'fig' (expected 'apple', 'pear' or 'plum')".to_string())
        );
        assert_eq!(serde_json::to_string(&Fruit::Pear).unwrap(), "\"pear\"");
        assert_eq!(
            serde_json::from_str::<Fruit>("\"plum\"").unwrap(),
            Fruit::Plum
        );
        let err = serde_json::from_str::<Fruit>("\"fig\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown fruit 'fig'"), "{err}");
        assert_eq!(super::alternatives(&["u", "uv"]), "'u' or 'uv'");
        assert_eq!(super::alternatives(&["x"]), "'x'");
    }
}
