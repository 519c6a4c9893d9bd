//! Command-line names of enums: one macro instead of a `name` / `Display` / `FromStr` triple
//! written out per enum.

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
        assert_eq!(super::alternatives(&["u", "uv"]), "'u' or 'uv'");
        assert_eq!(super::alternatives(&["x"]), "'x'");
    }
}
