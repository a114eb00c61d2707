//! What every parsed string newtype shares: `Display`, `Debug` and a `Deserialize` that goes
//! through the type's one parser.

/// Implements `Display`, `Debug` and `Deserialize` for a newtype over `String` whose only
/// constructor is `parse`: deserialising goes through the same parser as every other input.
macro_rules! parsed_string_traits {
    ($type:ident) => {
        impl ::std::fmt::Display for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::fmt::Debug for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $type {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(d)?;
                Self::parse(&text).map_err(|e| ::serde::de::Error::custom(e.message))
            }
        }
    };
}
pub(crate) use parsed_string_traits;
