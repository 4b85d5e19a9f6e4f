//! A string field borrowed from the report's bytes when it has no escapes.
//!
//! serde borrows a `Cow<'a, str>` field only when the field's type is
//! exactly `Cow` (derive's special case), never inside an `Option`; a
//! report's secret is optional. So a huge secret would be copied once more
//! (twice the report's size in memory) just to be hashed and dropped.

use serde::de::{Deserialize, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A JSON string: borrowed from the input when it holds no escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T<'a> {
        #[serde(borrow, default)]
        s: Option<Str<'a>>,
    }

    #[test]
    fn borrows_unless_escaped() {
        let plain = br#"{"s": "abc"}"#;
        let t: T = serde_json::from_slice(plain).unwrap();
        assert!(matches!(t.s.unwrap().0, Cow::Borrowed("abc")));
        let escaped = br#"{"s": "a\nc"}"#;
        let t: T = serde_json::from_slice(escaped).unwrap();
        assert!(matches!(t.s.unwrap().0, Cow::Owned(ref o) if o == "a\nc"));
        let t: T = serde_json::from_slice(b"{}").unwrap();
        assert!(t.s.is_none());
        let t: T = serde_json::from_slice(br#"{"s": null}"#).unwrap();
        assert!(t.s.is_none());
    }
}
